-- One row per invoice with what has been paid and what is still open on the as-of date, and how overdue
-- it is (models/docs.md: open_amount, overdue).
with invoices as (

    select * from {{ ref('stg_crm__invoices') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

payments as (

    select
        invoice_id,
        sum(amount) as paid_amount,
        max(payment_date) as last_payment_date,
    from {{ ref('stg_crm__payments') }}
    where payment_date <= (select as_of_date from as_of)
    group by invoice_id

),

balances as (

    select
        invoices.invoice_id,
        invoices.account_id,
        customers.customer_key,
        invoices.order_id,
        invoices.invoice_date,
        invoices.due_date,
        invoices.status,
        invoices.amount,
        coalesce(payments.paid_amount, 0) as paid_amount,
        payments.last_payment_date,
        case
            when invoices.status = 'void' then 0
            else greatest(invoices.amount - coalesce(payments.paid_amount, 0), 0)
        end as open_amount,
        as_of.as_of_date,
    from invoices
    cross join as_of
    left join payments
        on invoices.invoice_id = payments.invoice_id
    left join {{ ref('int_customers_resolved') }} as customers
        on invoices.account_id = customers.account_id
    where invoices.invoice_date <= as_of.as_of_date

),

final as (

    select
        invoice_id,
        account_id,
        customer_key,
        order_id,
        invoice_date,
        due_date,
        status,
        amount,
        paid_amount,
        last_payment_date,
        open_amount,
        open_amount > 0 and due_date < as_of_date as is_overdue,
        case when open_amount > 0 and due_date < as_of_date then as_of_date - due_date else 0 end as days_overdue,
        case
            when open_amount = 0 then 'settled'
            when due_date >= as_of_date then 'not_due'
            when as_of_date - due_date <= 30 then 'days_1_30'
            when as_of_date - due_date <= 60 then 'days_31_60'
            when as_of_date - due_date <= 90 then 'days_61_90'
            else 'days_over_90'
        end as overdue_bucket,
        as_of_date,
    from balances

)

select * from final
