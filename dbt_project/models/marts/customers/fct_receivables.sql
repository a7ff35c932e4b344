-- Receivables and overdue debt per customer on the as-of date, with days-overdue buckets.
-- One row per customer_key with at least one invoice.
with balances as (

    select * from {{ ref('int_invoice_balances') }}

),

final as (

    select
        customer_key,
        max(balances.as_of_date) as as_of_date,
        count(*) as invoices,
        count(*) filter (where open_amount > 0) as open_invoices,
        count(*) filter (where is_overdue) as overdue_invoices,
        sum(amount) filter (where status <> 'void') as invoiced_amount,
        sum(paid_amount) as paid_amount,
        sum(open_amount) as open_amount,
        coalesce(sum(open_amount) filter (where overdue_bucket = 'not_due'), 0) as not_due_amount,
        coalesce(sum(open_amount) filter (where is_overdue), 0) as overdue_amount,
        coalesce(sum(open_amount) filter (where overdue_bucket = 'days_1_30'), 0) as overdue_1_30_amount,
        coalesce(sum(open_amount) filter (where overdue_bucket = 'days_31_60'), 0) as overdue_31_60_amount,
        coalesce(sum(open_amount) filter (where overdue_bucket = 'days_61_90'), 0) as overdue_61_90_amount,
        coalesce(sum(open_amount) filter (where overdue_bucket = 'days_over_90'), 0) as overdue_over_90_amount,
        max(days_overdue) as max_days_overdue,
        min(due_date) filter (where is_overdue) as oldest_overdue_due_date,
    from balances
    group by customer_key

)

select * from final
