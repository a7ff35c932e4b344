-- One row per support ticket with its first-response and resolution times in hours and whether each met the
-- ticket's SLA (see the `sla_met` docs). "Now" is the end of the as-of day, never the wall clock.
with tickets as (

    select * from {{ ref('stg_crm__tickets') }}

),

customers as (

    select * from {{ ref('int_customers_resolved') }}

),

as_of as (

    select cast(as_of_date + interval 1 day as timestamp) as as_of_end from {{ ref('int_as_of_date') }}

),

timed as (

    select
        tickets.*,
        coalesce(customers.customer_key, tickets.account_id) as customer_key,
        epoch(tickets.first_response_at - tickets.created_at) / 3600.0 as first_response_hours,
        epoch(tickets.resolved_at - tickets.created_at) / 3600.0 as resolution_hours,
        tickets.created_at + to_microseconds(cast(tickets.sla_first_response_hours * 3600000000 as bigint))
            as first_response_due_at,
        tickets.created_at + to_microseconds(cast(tickets.sla_resolution_hours * 3600000000 as bigint))
            as resolution_due_at,
        as_of.as_of_end,
    from tickets
    cross join as_of
    left join customers on tickets.account_id = customers.account_id

),

final as (

    select
        ticket_id,
        account_id,
        customer_key,
        contact_id,
        assigned_user_id,
        priority,
        channel,
        category,
        status,
        status not in ('resolved', 'closed') as is_open,
        created_at,
        cast(date_trunc('month', created_at) as date) as created_month,
        first_response_at,
        resolved_at,
        sla_first_response_hours,
        sla_resolution_hours,
        first_response_due_at,
        resolution_due_at,
        first_response_hours,
        resolution_hours,
        -- met when answered by the deadline; missed when answered late or still unanswered after it; unknown while
        -- the deadline has not passed yet
        case
            when first_response_at is not null then first_response_at <= first_response_due_at
            when as_of_end > first_response_due_at then false
        end as first_response_sla_met,
        case
            when resolved_at is not null then resolved_at <= resolution_due_at
            when as_of_end > resolution_due_at then false
        end as resolution_sla_met,
        satisfaction_score,
    from timed

)

select * from final
