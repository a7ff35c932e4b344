-- One row per customer and calendar month, from the customer's first month to the as-of month: orders,
-- revenue, interactions by channel, tickets opened and still unresolved at month end, overdue invoice amount
-- at month end and contracts in force. Every figure only uses what was known by the end of that month, so
-- the ML features (models/features.py) can be cut at any past month for time-based backtests.
with customers as (

    select account_id, customer_key, from {{ ref('int_customers_resolved') }}

),

as_of as (

    select
        as_of_date,
        cast(date_trunc('month', as_of_date) as date) as as_of_month,
    from {{ ref('int_as_of_date') }}

),

accounts as (

    select account_id, account_type, created_at, from {{ ref('stg_crm__accounts') }}

),

contacts as (

    select contact_id, account_id, from {{ ref('stg_crm__contacts') }}

),

order_months as (

    select
        customer_key,
        cast(date_trunc('month', order_date) as date) as month_start,
        count(distinct order_id) filter (where order_status = 'completed') as orders,
        count(distinct order_id) filter (where order_status in ('cancelled', 'returned')) as cancelled_or_returned_orders,
        sum(revenue) as revenue,
        count(distinct product_id) filter (where order_status = 'completed') as distinct_products,
        max(order_date) as last_order_on,
    from {{ ref('int_order_lines_enriched') }}
    where customer_key is not null
    group by all

),

interactions as (

    select
        customers.customer_key,
        cast(date_trunc('month', interactions.occurred_at) as date) as month_start,
        cast(interactions.occurred_at as date) as occurred_on,
        interactions.channel,
        interactions.direction,
    from {{ ref('stg_crm__interactions') }} as interactions
    left join contacts
        on interactions.contact_id = contacts.contact_id
    inner join customers
        on coalesce(interactions.account_id, contacts.account_id) = customers.account_id

),

interaction_months as (

    select
        customer_key,
        month_start,
        count(*) as interactions,
        max(occurred_on) as last_interaction_on,
        count(*) filter (where direction = 'inbound') as inbound_interactions,
        count(*) filter (where channel = 'call') as call_interactions,
        count(*) filter (where channel = 'email') as email_interactions,
        count(*) filter (where channel = 'meeting') as meeting_interactions,
        count(*) filter (where channel = 'chat') as chat_interactions,
        count(*) filter (where channel = 'web_visit') as web_visit_interactions,
        count(*) filter (where channel = 'form') as form_interactions,
        count(*) filter (where channel = 'social') as social_interactions,
        count(*) filter (where channel = 'event') as event_interactions,
    from interactions
    group by all

),

tickets as (

    select customers.customer_key, tickets.*,
    from {{ ref('stg_crm__tickets') }} as tickets
    inner join customers
        on tickets.account_id = customers.account_id

),

ticket_months as (

    select
        customer_key,
        cast(date_trunc('month', created_at) as date) as month_start,
        count(*) as tickets_opened,
        max(cast(created_at as date)) as last_ticket_on,
        count(*) filter (where priority in ('high', 'urgent')) as urgent_tickets_opened,
        count(*) filter (where category = 'billing') as billing_tickets_opened,
        sum(satisfaction_score) as satisfaction_sum,
        count(satisfaction_score) as satisfaction_responses,
    from tickets
    group by all

),

ticket_open_months as (

    -- every month end a ticket was still unresolved: created before the month end, resolved at or after it
    select
        tickets.customer_key,
        cast(open_month.month_start as date) as month_start,
        count(*) as tickets_unresolved,
    from tickets
    cross join as_of
    cross join unnest(generate_series(
        cast(date_trunc('month', tickets.created_at) as date),
        cast(date_trunc('month', coalesce(tickets.resolved_at, cast(as_of.as_of_date as timestamp))) as date),
        interval 1 month
    )) as open_month (month_start)
    where
        tickets.created_at < open_month.month_start + interval 1 month
        and (tickets.resolved_at is null or tickets.resolved_at >= open_month.month_start + interval 1 month)
    group by all

),

invoices as (

    select customers.customer_key, invoices.*,
    from {{ ref('stg_crm__invoices') }} as invoices
    inner join customers
        on invoices.account_id = customers.account_id
    where invoices.status <> 'void'

),

payments as (

    select invoice_id, payment_date, amount, from {{ ref('stg_crm__payments') }}

),

invoice_last_payment as (

    select invoice_id, max(payment_date) as last_payment_date, from payments group by invoice_id

),

invoice_months as (

    -- month ends at which an invoice was past due: from its due month until its last payment (or today)
    select
        invoices.customer_key,
        invoices.invoice_id,
        invoices.amount,
        cast(overdue_month.month_start as date) as month_start,
    from invoices
    cross join as_of
    left join invoice_last_payment
        on invoices.invoice_id = invoice_last_payment.invoice_id
    cross join unnest(generate_series(
        cast(date_trunc('month', invoices.due_date) as date),
        cast(date_trunc('month', greatest(invoices.due_date, coalesce(invoice_last_payment.last_payment_date, as_of.as_of_date))) as date),
        interval 1 month
    )) as overdue_month (month_start)
    where invoices.due_date < overdue_month.month_start + interval 1 month

),

invoice_overdue as (

    select
        invoice_months.customer_key,
        invoice_months.month_start,
        invoice_months.invoice_id,
        invoice_months.amount - coalesce(sum(payments.amount), 0) as unpaid_amount,
    from invoice_months
    left join payments
        on invoice_months.invoice_id = payments.invoice_id
        and payments.payment_date < invoice_months.month_start + interval 1 month
    group by invoice_months.customer_key, invoice_months.month_start, invoice_months.invoice_id, invoice_months.amount

),

overdue_months as (

    select
        customer_key,
        month_start,
        count(*) as overdue_invoices,
        sum(unpaid_amount) as overdue_amount,
    from invoice_overdue
    where unpaid_amount > 0.005
    group by all

),

contract_months as (

    -- contracts in force at the month end (start before it, end on or after it)
    select
        customers.customer_key,
        cast(contract_month.month_start as date) as month_start,
        count(*) as active_contracts,
        sum(contracts.annual_value) as active_contract_value,
        count(*) filter (
            where contracts.end_date < contract_month.month_start + interval 1 month + interval 90 day
        ) as contracts_ending_within_90_days,
    from {{ ref('stg_crm__contracts') }} as contracts
    inner join customers
        on contracts.account_id = customers.account_id
    cross join unnest(generate_series(
        cast(date_trunc('month', contracts.start_date) as date),
        cast(date_trunc('month', contracts.end_date) as date),
        interval 1 month
    )) as contract_month (month_start)
    where
        contracts.start_date < contract_month.month_start + interval 1 month
        and contracts.end_date >= contract_month.month_start + interval 1 month
    group by all

),

first_months as (

    select customer_key, min(month_start) as first_month,
    from (
        select customers.customer_key, cast(date_trunc('month', accounts.created_at) as date) as month_start,
        from customers
        inner join accounts
            on customers.account_id = accounts.account_id
        union all
        select customer_key, month_start, from order_months
        union all
        select customer_key, month_start, from interaction_months
    )
    group by customer_key

),

spine as (

    select
        first_months.customer_key,
        cast(spine_month.month_start as date) as month_start,
        as_of.as_of_date,
    from first_months
    cross join as_of
    cross join unnest(generate_series(first_months.first_month, as_of.as_of_month, interval 1 month))
        as spine_month (month_start)

),

final as (

    select
        spine.customer_key || '|' || strftime(spine.month_start, '%Y-%m') as customer_month_id,
        spine.customer_key,
        coalesce(anchor.account_type, '(none)') as customer_type,
        spine.month_start,
        spine.month_start + interval 1 month <= spine.as_of_date + interval 1 day as is_complete_month,
        spine.as_of_date,
        -- the latest day in the month with an order, interaction or ticket (recency finer than a month)
        greatest(order_months.last_order_on, interaction_months.last_interaction_on, ticket_months.last_ticket_on)
            as last_activity_on,
        cast(coalesce(order_months.orders, 0) as bigint) as orders,
        cast(coalesce(order_months.cancelled_or_returned_orders, 0) as bigint) as cancelled_or_returned_orders,
        cast(coalesce(order_months.revenue, 0) as double) as revenue,
        cast(coalesce(order_months.distinct_products, 0) as bigint) as distinct_products,
        cast(coalesce(interaction_months.interactions, 0) as bigint) as interactions,
        cast(coalesce(interaction_months.inbound_interactions, 0) as bigint) as inbound_interactions,
        cast(coalesce(interaction_months.call_interactions, 0) as bigint) as call_interactions,
        cast(coalesce(interaction_months.email_interactions, 0) as bigint) as email_interactions,
        cast(coalesce(interaction_months.meeting_interactions, 0) as bigint) as meeting_interactions,
        cast(coalesce(interaction_months.chat_interactions, 0) as bigint) as chat_interactions,
        cast(coalesce(interaction_months.web_visit_interactions, 0) as bigint) as web_visit_interactions,
        cast(coalesce(interaction_months.form_interactions, 0) as bigint) as form_interactions,
        cast(coalesce(interaction_months.social_interactions, 0) as bigint) as social_interactions,
        cast(coalesce(interaction_months.event_interactions, 0) as bigint) as event_interactions,
        cast(coalesce(ticket_months.tickets_opened, 0) as bigint) as tickets_opened,
        cast(coalesce(ticket_months.urgent_tickets_opened, 0) as bigint) as urgent_tickets_opened,
        cast(coalesce(ticket_months.billing_tickets_opened, 0) as bigint) as billing_tickets_opened,
        cast(coalesce(ticket_months.satisfaction_sum, 0) as bigint) as satisfaction_sum,
        cast(coalesce(ticket_months.satisfaction_responses, 0) as bigint) as satisfaction_responses,
        cast(coalesce(ticket_open_months.tickets_unresolved, 0) as bigint) as tickets_unresolved_at_month_end,
        cast(coalesce(overdue_months.overdue_invoices, 0) as bigint) as overdue_invoices_at_month_end,
        cast(coalesce(overdue_months.overdue_amount, 0) as double) as overdue_amount_at_month_end,
        cast(coalesce(contract_months.active_contracts, 0) as bigint) as active_contracts_at_month_end,
        cast(coalesce(contract_months.active_contract_value, 0) as double) as active_contract_value_at_month_end,
        cast(coalesce(contract_months.contracts_ending_within_90_days, 0) as bigint) as contracts_ending_within_90_days,
    from spine
    left join order_months using (customer_key, month_start)
    left join interaction_months using (customer_key, month_start)
    left join ticket_months using (customer_key, month_start)
    left join ticket_open_months using (customer_key, month_start)
    left join overdue_months using (customer_key, month_start)
    left join contract_months using (customer_key, month_start)
    left join accounts as anchor
        on spine.customer_key = anchor.account_id

)

select * from final
