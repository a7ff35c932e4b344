-- One row per order with its customer and the money of its lines, for the customer 360's order list.
-- Revenue and margin follow the shared definitions (models/docs.md): only completed orders carry revenue,
-- so a cancelled or returned order shows its lines with revenue 0.
with orders as (

    select * from {{ ref('stg_crm__orders') }}

),

customers as (

    select account_id, customer_key, from {{ ref('int_customers_resolved') }}

),

order_totals as (

    select
        order_id,
        count(*) as lines,
        sum(revenue) as revenue,
        sum(margin) as margin,
    from {{ ref('int_order_lines_enriched') }}
    group by order_id

),

final as (

    select
        orders.order_id,
        customers.customer_key,
        orders.account_id,
        orders.order_date,
        orders.status,
        orders.sales_channel,
        orders.owner_user_id,
        coalesce(order_totals.revenue, 0) as revenue,
        coalesce(order_totals.margin, 0) as margin,
        coalesce(order_totals.lines, 0) as lines,
    from orders
    inner join customers
        on orders.account_id = customers.account_id
    left join order_totals
        on orders.order_id = order_totals.order_id

)

select * from final
