{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- orders: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'orders') }}

),

final as (

    select
        cast(order_id as varchar) as order_id,
        cast(account_id as varchar) as account_id,
        cast(opportunity_id as varchar) as opportunity_id,
        cast(owner_user_id as varchar) as owner_user_id,
        cast(order_date as date) as order_date,
        cast(status as varchar) as status,
        cast(sales_channel as varchar) as sales_channel,
        cast(currency as varchar) as currency,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
