{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- opportunities: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'opportunities') }}

),

final as (

    select
        cast(opportunity_id as varchar) as opportunity_id,
        cast(account_id as varchar) as account_id,
        cast(owner_user_id as varchar) as owner_user_id,
        cast(opportunity_name as varchar) as opportunity_name,
        cast(stage as varchar) as stage,
        cast(amount as double) as amount,
        cast(expected_close_date as date) as expected_close_date,
        cast(product_id as varchar) as product_id,
        cast(lead_id as varchar) as lead_id,
        cast(lead_source as varchar) as lead_source,
        cast(campaign_id as varchar) as campaign_id,
        cast(lost_reason as varchar) as lost_reason,
        cast(created_at as timestamp) as created_at,
        cast(closed_at as timestamp) as closed_at,
        cast(is_archived as boolean) as is_archived,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
