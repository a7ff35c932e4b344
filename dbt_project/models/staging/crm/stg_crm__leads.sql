{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- leads: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'leads') }}

),

final as (

    select
        cast(lead_id as varchar) as lead_id,
        cast(first_name as varchar) as first_name,
        cast(last_name as varchar) as last_name,
        cast(company as varchar) as company,
        cast(email as varchar) as email,
        cast(phone as varchar) as phone,
        cast(lead_source as varchar) as lead_source,
        cast(campaign_id as varchar) as campaign_id,
        cast(owner_user_id as varchar) as owner_user_id,
        cast(status as varchar) as status,
        cast(created_at as timestamp) as created_at,
        cast(first_response_at as timestamp) as first_response_at,
        cast(converted_at as timestamp) as converted_at,
        cast(converted_account_id as varchar) as converted_account_id,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
