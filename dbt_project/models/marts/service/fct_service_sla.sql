-- Service level by month of creation, priority and channel: ticket counts, SLA attainment for first response and
-- resolution (met / decided, tickets still inside their deadline left out), hours and satisfaction.
with tickets as (

    select * from {{ ref('fct_tickets') }}

),

aggregated as (

    select
        created_month,
        priority,
        channel,
        count(*) as tickets,
        count(*) filter (where is_open) as open_tickets,
        count(*) filter (where resolved_at is not null) as resolved_tickets,
        count(first_response_sla_met) as first_response_sla_decided,
        count(*) filter (where first_response_sla_met) as first_response_sla_met,
        count(resolution_sla_met) as resolution_sla_decided,
        count(*) filter (where resolution_sla_met) as resolution_sla_met,
        avg(first_response_hours) as avg_first_response_hours,
        median(first_response_hours) as median_first_response_hours,
        avg(resolution_hours) as avg_resolution_hours,
        median(resolution_hours) as median_resolution_hours,
        count(satisfaction_score) as satisfaction_responses,
        avg(satisfaction_score) as avg_satisfaction_score,
    from tickets
    group by created_month, priority, channel

),

final as (

    select
        concat_ws('|', strftime(created_month, '%Y-%m'), priority, channel) as service_sla_row_id,
        created_month,
        priority,
        channel,
        cast(tickets as bigint) as tickets,
        cast(open_tickets as bigint) as open_tickets,
        cast(resolved_tickets as bigint) as resolved_tickets,
        cast(first_response_sla_decided as bigint) as first_response_sla_decided,
        cast(first_response_sla_met as bigint) as first_response_sla_met,
        cast(first_response_sla_met as double) / nullif(first_response_sla_decided, 0)
            as first_response_sla_attainment,
        cast(resolution_sla_decided as bigint) as resolution_sla_decided,
        cast(resolution_sla_met as bigint) as resolution_sla_met,
        cast(resolution_sla_met as double) / nullif(resolution_sla_decided, 0) as resolution_sla_attainment,
        cast(avg_first_response_hours as double) as avg_first_response_hours,
        cast(median_first_response_hours as double) as median_first_response_hours,
        cast(avg_resolution_hours as double) as avg_resolution_hours,
        cast(median_resolution_hours as double) as median_resolution_hours,
        cast(satisfaction_responses as bigint) as satisfaction_responses,
        cast(avg_satisfaction_score as double) as avg_satisfaction_score,
    from aggregated

)

select * from final
