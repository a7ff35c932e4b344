-- One row per customer, completed order and product: what each customer bought and when. The next-best-
-- product model learns from it which product a customer buys next; lines of one product in one order are summed.
with lines as (

    select * from {{ ref('int_order_lines_enriched') }}
    where order_status = 'completed' and customer_key is not null

),

final as (

    select
        order_id || '|' || product_id as purchase_id,
        customer_key,
        order_id,
        order_date,
        product_id,
        coalesce(any_value(product_line), '(none)') as product_line,
        cast(sum(quantity) as bigint) as quantity,
        cast(sum(revenue) as double) as revenue,
    from lines
    group by customer_key, order_id, order_date, product_id

)

select * from final
