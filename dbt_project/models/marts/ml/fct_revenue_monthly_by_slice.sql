-- Completed-order revenue per calendar month, overall and by segment, region and product line (long format,
-- zero-filled from the first month with any order to the as-of month). The series the sales forecast fits.
-- The current month is partial until the as-of date reaches its last day (`is_complete_month`).
with lines as (

    select * from {{ ref('int_order_lines_enriched') }}
    where order_status = 'completed'

),

accounts as (

    select account_id, account_type, region, from {{ ref('stg_crm__accounts') }}

),

as_of as (

    select as_of_date, cast(date_trunc('month', as_of_date) as date) as as_of_month,
    from {{ ref('int_as_of_date') }}

),

attributed as (

    -- a customer's segment and region are those of its resolved (anchor) account
    select
        cast(date_trunc('month', lines.order_date) as date) as month_start,
        lines.order_id,
        lines.customer_key,
        lines.revenue,
        coalesce(anchor.account_type, own.account_type, '(none)') as segment,
        coalesce(anchor.region, own.region, '(none)') as region,
        coalesce(lines.product_line, '(none)') as product_line,
    from lines
    left join accounts as anchor
        on lines.customer_key = anchor.account_id
    left join accounts as own
        on lines.account_id = own.account_id

),

sliced as (

    select 'overall' as slice_type, 'all' as slice_value, month_start, order_id, customer_key, revenue, from attributed
    union all
    select 'segment', segment, month_start, order_id, customer_key, revenue, from attributed
    union all
    select 'region', region, month_start, order_id, customer_key, revenue, from attributed
    union all
    select 'product_line', product_line, month_start, order_id, customer_key, revenue, from attributed

),

monthly as (

    select
        slice_type,
        slice_value,
        month_start,
        sum(revenue) as revenue,
        count(distinct order_id) as orders,
        count(distinct customer_key) as customers,
    from sliced
    group by all

),

months as (

    select cast(month_start as date) as month_start,
    from as_of
    cross join unnest(generate_series(
        (select min(month_start) from attributed), as_of.as_of_month, interval 1 month
    )) as spine (month_start)

),

slices as (

    select distinct slice_type, slice_value, from monthly

),

final as (

    select
        slices.slice_type || '|' || slices.slice_value || '|' || strftime(months.month_start, '%Y-%m') as revenue_month_id,
        slices.slice_type,
        slices.slice_value,
        months.month_start,
        months.month_start + interval 1 month <= as_of.as_of_date + interval 1 day as is_complete_month,
        cast(coalesce(monthly.revenue, 0) as double) as revenue,
        cast(coalesce(monthly.orders, 0) as bigint) as orders,
        cast(coalesce(monthly.customers, 0) as bigint) as customers,
    from slices
    cross join months
    cross join as_of
    left join monthly
        on slices.slice_type = monthly.slice_type
        and slices.slice_value = monthly.slice_value
        and months.month_start = monthly.month_start

)

select * from final
