-- One row per rep (sales reps and managers, and anyone else who owns deals, leads or tasks): recent activity,
-- leads handled and how fast they were answered, overdue tasks, open-deal workload, win rate, and workload and
-- activity against the mean of the rep's team (1.0 = the team mean). "Now" is the end of the as-of day.
{%- set activity_window_days = var('rep_activity_window_days', 90) %}

with users as (

    select * from {{ ref('stg_crm__users') }}

),

teams as (

    select * from {{ ref('stg_crm__teams') }}

),

as_of as (

    select
        as_of_date,
        cast(as_of_date + interval 1 day as timestamp) as as_of_end,
    from {{ ref('int_as_of_date') }}

),

activity as (

    select
        activity.user_id,
        sum(activity.total_interactions) as activities_recent,
        sum(activity.calls) as calls_recent,
        sum(activity.meetings) as meetings_recent,
        sum(activity.emails) as emails_recent,
        sum(activity.tasks_completed) as tasks_completed_recent,
    from {{ ref('fct_rep_activity_daily') }} as activity
    cross join as_of
    where activity.activity_date > as_of.as_of_date - {{ activity_window_days }}
        and activity.activity_date <= as_of.as_of_date
    group by activity.user_id

),

leads as (

    select
        owner_user_id as user_id,
        count(*) as leads_owned,
        count(*) filter (where status in ('new', 'working')) as leads_open,
        count(*) filter (where first_response_at is not null) as leads_responded,
        count(*) filter (where status = 'converted' or converted_account_id is not null) as leads_converted,
        median(epoch(first_response_at - created_at) / 3600.0) as median_lead_response_hours,
    from {{ ref('stg_crm__leads') }}
    where owner_user_id is not null
    group by owner_user_id

),

tasks as (

    select
        tasks.owner_user_id as user_id,
        count(*) filter (where tasks.status = 'open') as open_tasks,
        count(*) filter (where tasks.status = 'open' and tasks.due_at < as_of.as_of_end) as overdue_tasks,
    from {{ ref('stg_crm__tasks') }} as tasks
    cross join as_of
    where not tasks.is_archived
    group by tasks.owner_user_id

),

deals as (

    select
        owner_user_id as user_id,
        count(*) filter (where not is_closed) as open_deals,
        coalesce(sum(amount) filter (where not is_closed), 0) as open_pipeline_amount,
        count(*) filter (where is_won) as deals_won,
        count(*) filter (where is_lost) as deals_lost,
        coalesce(sum(amount) filter (where is_won), 0) as won_amount,
        avg(sales_cycle_days) filter (where is_won) as avg_won_cycle_days,
    from {{ ref('fct_opportunities') }}
    group by owner_user_id

),

reps as (

    select
        users.user_id,
        users.full_name,
        users.role,
        users.team_id,
        teams.team_name,
        teams.region,
        users.is_active,
        cast(coalesce(activity.activities_recent, 0) as bigint) as activities_recent,
        cast(coalesce(activity.calls_recent, 0) as bigint) as calls_recent,
        cast(coalesce(activity.meetings_recent, 0) as bigint) as meetings_recent,
        cast(coalesce(activity.emails_recent, 0) as bigint) as emails_recent,
        cast(coalesce(activity.tasks_completed_recent, 0) as bigint) as tasks_completed_recent,
        cast(coalesce(leads.leads_owned, 0) as bigint) as leads_owned,
        cast(coalesce(leads.leads_open, 0) as bigint) as leads_open,
        cast(coalesce(leads.leads_responded, 0) as bigint) as leads_responded,
        cast(coalesce(leads.leads_converted, 0) as bigint) as leads_converted,
        cast(leads.median_lead_response_hours as double) as median_lead_response_hours,
        cast(coalesce(tasks.open_tasks, 0) as bigint) as open_tasks,
        cast(coalesce(tasks.overdue_tasks, 0) as bigint) as overdue_tasks,
        cast(coalesce(deals.open_deals, 0) as bigint) as open_deals,
        cast(coalesce(deals.open_pipeline_amount, 0) as double) as open_pipeline_amount,
        cast(coalesce(deals.deals_won, 0) as bigint) as deals_won,
        cast(coalesce(deals.deals_lost, 0) as bigint) as deals_lost,
        cast(deals.deals_won as double) / nullif(deals.deals_won + deals.deals_lost, 0) as win_rate,
        cast(coalesce(deals.won_amount, 0) as double) as won_amount,
        cast(deals.avg_won_cycle_days as double) as avg_won_cycle_days,
    from users
    left join teams on users.team_id = teams.team_id
    left join activity on users.user_id = activity.user_id
    left join leads on users.user_id = leads.user_id
    left join tasks on users.user_id = tasks.user_id
    left join deals on users.user_id = deals.user_id
    where users.role in ('sales_rep', 'manager')
        or leads.user_id is not null
        or tasks.user_id is not null
        or deals.user_id is not null

),

final as (

    select
        reps.*,
        avg(open_deals) over team as team_mean_open_deals,
        case when team_id is not null then open_deals / nullif(avg(open_deals) over team, 0) end
            as workload_index,
        avg(activities_recent) over team as team_mean_activities_recent,
        case when team_id is not null then activities_recent / nullif(avg(activities_recent) over team, 0) end
            as activity_index,
    from reps
    window team as (partition by team_id)

)

select * from final
