{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- product_prices: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'product_prices') }}

),

final as (

    select
        cast(price_id as varchar) as price_id,
        cast(product_id as varchar) as product_id,
        cast(price_list as varchar) as price_list,
        cast(unit_price as double) as unit_price,
        cast(valid_from as date) as valid_from,
        cast(valid_to as date) as valid_to,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
