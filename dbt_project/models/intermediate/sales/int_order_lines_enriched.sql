-- Order lines with their order, customer, product and the money figures every mart shares
-- (revenue, cost, margin: models/docs.md). One row per order line.
with order_lines as (

    select * from {{ ref('stg_crm__order_lines') }}

),

orders as (

    select * from {{ ref('stg_crm__orders') }}

),

products as (

    select * from {{ ref('stg_crm__products') }}

),

customers as (

    select * from {{ ref('int_customers_resolved') }}

),

joined as (

    select
        order_lines.order_line_id,
        order_lines.order_id,
        orders.account_id,
        customers.customer_key,
        orders.order_date,
        orders.status as order_status,
        orders.sales_channel,
        orders.owner_user_id,
        order_lines.product_id,
        products.product_line,
        order_lines.quantity,
        order_lines.unit_price,
        products.list_price,
        order_lines.discount_pct,
        products.max_discount_pct,
        orders.status = 'completed' as is_completed,
        {{ line_revenue('order_lines.quantity', 'order_lines.unit_price', 'order_lines.discount_pct', 'order_lines.line_amount') }} as gross_line_revenue,
        order_lines.quantity * products.unit_cost as gross_line_cost,
    from order_lines
    inner join orders
        on order_lines.order_id = orders.order_id
    left join products
        on order_lines.product_id = products.product_id
    left join customers
        on orders.account_id = customers.account_id

),

final as (

    select
        order_line_id,
        order_id,
        account_id,
        customer_key,
        order_date,
        order_status,
        sales_channel,
        owner_user_id,
        product_id,
        product_line,
        quantity,
        unit_price,
        list_price,
        discount_pct,
        max_discount_pct,
        case when is_completed then gross_line_revenue else 0 end as revenue,
        case when is_completed then gross_line_cost else 0 end as cost,
        case when is_completed then gross_line_revenue - gross_line_cost else 0 end as margin,
        discount_pct > max_discount_pct as is_below_floor,
    from joined

)

select * from final
