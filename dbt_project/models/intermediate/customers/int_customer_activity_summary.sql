-- One row per customer_key (every resolved customer, buyers or not): order and interaction history
-- condensed to what the customer marts share - lifetime and RFM-window totals, first/last order, the
-- latest return after a churn-length gap (reactivation) and interaction recency.
with activity as (

    select
        customers.customer_key,
        daily.*,
    from {{ ref('int_account_daily_activity') }} as daily
    inner join {{ ref('int_customers_resolved') }} as customers
        on daily.account_id = customers.account_id

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

customer_days as (

    -- merged accounts can both be active on one day: one row per customer and day
    select
        customer_key,
        activity_date,
        sum(completed_orders) as completed_orders,
        sum(orders) as orders,
        sum(revenue) as revenue,
        sum(cost) as cost,
        sum(margin) as margin,
        sum(interactions) as interactions,
        max(last_interaction_at) as last_interaction_at,
    from activity
    where activity_date <= (select as_of_date from as_of)
    group by customer_key, activity_date

),

order_days as (

    select
        customer_key,
        activity_date,
        lag(activity_date) over (partition by customer_key order by activity_date) as previous_order_date,
    from customer_days
    where completed_orders > 0

),

returns_after_gap as (

    select
        customer_key,
        max(activity_date) as last_reactivation_date,
    from order_days
    where activity_date - previous_order_date > {{ var('churn_after_days') }}
    group by customer_key

),

totals as (

    select
        customer_days.customer_key,
        min(activity_date) filter (where completed_orders > 0) as first_order_date,
        max(activity_date) filter (where completed_orders > 0) as last_order_date,
        cast(sum(completed_orders) as bigint) as lifetime_orders,
        sum(revenue) as lifetime_revenue,
        sum(cost) as lifetime_cost,
        sum(margin) as lifetime_margin,
        cast(coalesce(sum(completed_orders) filter (
            where activity_date > as_of.as_of_date - {{ var('rfm_window_days') }}
        ), 0) as bigint) as window_orders,
        coalesce(sum(revenue) filter (where activity_date > as_of.as_of_date - {{ var('rfm_window_days') }}), 0)
            as window_revenue,
        coalesce(sum(cost) filter (where activity_date > as_of.as_of_date - {{ var('rfm_window_days') }}), 0)
            as window_cost,
        coalesce(sum(margin) filter (where activity_date > as_of.as_of_date - {{ var('rfm_window_days') }}), 0)
            as window_margin,
        max(last_interaction_at) as last_interaction_at,
        cast(coalesce(sum(interactions) filter (where activity_date > as_of.as_of_date - 90), 0) as bigint)
            as interactions_90d,
    from customer_days
    cross join as_of
    group by customer_days.customer_key

),

customers as (

    select distinct customer_key from {{ ref('int_customers_resolved') }}

),

final as (

    select
        customers.customer_key,
        as_of.as_of_date,
        totals.first_order_date,
        totals.last_order_date,
        as_of.as_of_date - totals.last_order_date as recency_days,
        coalesce(totals.lifetime_orders, 0) as lifetime_orders,
        coalesce(totals.lifetime_revenue, 0) as lifetime_revenue,
        coalesce(totals.lifetime_cost, 0) as lifetime_cost,
        coalesce(totals.lifetime_margin, 0) as lifetime_margin,
        coalesce(totals.window_orders, 0) as window_orders,
        coalesce(totals.window_revenue, 0) as window_revenue,
        coalesce(totals.window_cost, 0) as window_cost,
        coalesce(totals.window_margin, 0) as window_margin,
        returns_after_gap.last_reactivation_date,
        totals.last_interaction_at,
        coalesce(totals.interactions_90d, 0) as interactions_90d,
    from customers
    cross join as_of
    left join totals
        on customers.customer_key = totals.customer_key
    left join returns_after_gap
        on customers.customer_key = returns_after_gap.customer_key

)

select * from final
