-- order_lines: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'order_lines') }}

),

final as (

    select
        cast(order_line_id as varchar) as order_line_id,
        cast(order_id as varchar) as order_id,
        cast(product_id as varchar) as product_id,
        cast(quantity as bigint) as quantity,
        cast(unit_price as double) as unit_price,
        cast(discount_pct as double) as discount_pct,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
