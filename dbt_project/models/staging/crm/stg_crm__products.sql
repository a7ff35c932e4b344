{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- products: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'products') }}

),

final as (

    select
        cast(product_id as varchar) as product_id,
        cast(sku as varchar) as sku,
        cast(product_name as varchar) as product_name,
        cast(product_line as varchar) as product_line,
        cast(list_price as double) as list_price,
        cast(unit_cost as double) as unit_cost,
        cast(max_discount_pct as double) as max_discount_pct,
        cast(is_recurring as boolean) as is_recurring,
        cast(is_active as boolean) as is_active,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
