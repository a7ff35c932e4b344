-- Monthly acquisition cohorts x months since the first order: active customers and retention rate
-- (models/docs.md: cohort_retention). Every month from the cohort's month to the as-of month has a row.
with customer_months as (

    select distinct
        customers.customer_key,
        date_trunc('month', daily.activity_date) as activity_month,
    from {{ ref('int_account_daily_activity') }} as daily
    inner join {{ ref('int_customers_resolved') }} as customers
        on daily.account_id = customers.account_id
    where
        daily.completed_orders > 0
        and daily.activity_date <= (select as_of_date from {{ ref('int_as_of_date') }})

),

cohorts as (

    select
        customer_key,
        min(activity_month) as cohort_month,
    from customer_months
    group by customer_key

),

cohort_sizes as (

    select cohort_month, count(*) as cohort_size,
    from cohorts
    group by cohort_month

),

cohort_grid as (

    -- every month since the cohort month up to the as-of month, so months without buyers show 0
    select
        cohort_sizes.cohort_month,
        cohort_sizes.cohort_size,
        cast(months_since_first_order as integer) as months_since_first_order,
    from cohort_sizes
    cross join (select as_of_date from {{ ref('int_as_of_date') }}) as as_of
    cross join unnest(
        range(0, date_diff('month', cohort_sizes.cohort_month, date_trunc('month', as_of.as_of_date)) + 1)
    ) as months(months_since_first_order)

),

activity as (

    select
        cohorts.cohort_month,
        date_diff('month', cohorts.cohort_month, customer_months.activity_month) as months_since_first_order,
        count(*) as active_customers,
    from customer_months
    inner join cohorts
        on customer_months.customer_key = cohorts.customer_key
    group by 1, 2

),

final as (

    select
        strftime(cohort_grid.cohort_month, '%Y-%m') || '+' || cast(cohort_grid.months_since_first_order as varchar)
            as cohort_period_id,
        cast(cohort_grid.cohort_month as date) as cohort_month,
        cohort_grid.months_since_first_order,
        cast(cohort_grid.cohort_month + to_months(cohort_grid.months_since_first_order) as date) as activity_month,
        cohort_grid.cohort_size,
        coalesce(activity.active_customers, 0) as active_customers,
        coalesce(activity.active_customers, 0) / cohort_grid.cohort_size as retention_rate,
    from cohort_grid
    left join activity
        on cohort_grid.cohort_month = activity.cohort_month
        and cohort_grid.months_since_first_order = activity.months_since_first_order

)

select * from final
