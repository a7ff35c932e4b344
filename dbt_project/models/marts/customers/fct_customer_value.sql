-- Customer value per customer_key: lifetime and trailing-window revenue, cost and margin, historical CLV,
-- order behaviour, and what the customer owes (receivables, overdue debt).
with summary as (

    select * from {{ ref('int_customer_activity_summary') }}

),

receivables as (

    select * from {{ ref('fct_receivables') }}

),

final as (

    select
        summary.customer_key,
        summary.as_of_date,
        summary.first_order_date,
        summary.last_order_date,
        summary.as_of_date - summary.first_order_date as tenure_days,
        summary.lifetime_orders,
        summary.lifetime_revenue,
        summary.lifetime_cost,
        summary.lifetime_margin,
        case when summary.lifetime_revenue > 0 then summary.lifetime_margin / summary.lifetime_revenue end
            as margin_pct,
        case when summary.lifetime_orders > 0 then summary.lifetime_revenue / summary.lifetime_orders end
            as average_order_value,
        summary.window_orders as orders_12m,
        summary.window_revenue as revenue_12m,
        summary.window_margin as margin_12m,
        summary.lifetime_margin as historical_clv,
        coalesce(receivables.open_amount, 0) as receivables_amount,
        coalesce(receivables.overdue_amount, 0) as overdue_amount,
        coalesce(receivables.max_days_overdue, 0) as max_days_overdue,
    from summary
    left join receivables
        on summary.customer_key = receivables.customer_key

)

select * from final
