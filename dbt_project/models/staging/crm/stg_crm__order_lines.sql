{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- order_lines: contract columns (names and types), plus the lineage columns `_source` and `_ingested_at`. Money is
-- converted to the reporting currency here (crm.yaml `currency`): unit_price is in reporting units, the price as
-- the file gave it and its currency are kept beside it. Ingestion quarantined orders in a currency without a rate.
with source as (

    select * from {{ source('crm', 'order_lines') }}

),

orders as (

    select order_id, currency from {{ source('crm', 'orders') }}

),

currencies as (

    select currency, rate_to_reporting from {{ ref('stg_settings__currencies') }}

),

final as (

    select
        cast(source.order_line_id as varchar) as order_line_id,
        cast(source.order_id as varchar) as order_id,
        cast(source.product_id as varchar) as product_id,
        cast(source.quantity as bigint) as quantity,
        -- a line whose order is missing (quarantined) keeps its price unconverted; its order never joins it
        cast(source.unit_price * coalesce(currencies.rate_to_reporting, 1.0) as double) as unit_price,
        cast(source.discount_pct as double) as discount_pct,
        cast(source.updated_at as timestamp) as updated_at,
        cast(source.unit_price as double) as unit_price_in_currency,
        -- the net line total some exports give instead of a unit price: revenue when set (line_revenue macro)
        cast(source.line_amount * coalesce(currencies.rate_to_reporting, 1.0) as double) as line_amount,
        cast(orders.currency as varchar) as currency,
        source._source,
        source._ingested_at,
    from source
    left join orders on source.order_id = orders.order_id
    left join currencies on orders.currency = currencies.currency

)

select * from final
