{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date',
        on_schema_change='append_new_columns',
    )
}}
-- What each rep did each day (fivetran's daily_activity): interactions by channel and direction, call minutes,
-- tasks completed and new leads answered. One row per rep and day with any activity. Incremental by day: a run
-- rebuilds only the days from the last stored one minus a short lookback, matching the daily interaction
-- partitions, so its cost grows with the new days, not with the history.
{%- set lookback_days = var('rep_activity_lookback_days', 3) %}

{#- the first day to rebuild, as a literal so DuckDB prunes the interaction history by its min/max indexes -#}
{%- set start_day = '1900-01-01' %}
{%- if is_incremental() and execute %}
    {%- set last_day = run_query('select max(activity_date) from ' ~ this).columns[0].values()[0] %}
    {%- if last_day is not none %}
        {%- set start_day = (last_day - modules.datetime.timedelta(days=lookback_days - 1)).isoformat() %}
    {%- endif %}
{%- endif %}

with interactions as (

    select
        user_id,
        cast(occurred_at as date) as activity_date,
        count(*) as total_interactions,
        count(*) filter (where channel = 'call') as calls,
        count(*) filter (where channel = 'email') as emails,
        count(*) filter (where channel = 'meeting') as meetings,
        count(*) filter (where channel = 'chat') as chats,
        count(*) filter (where channel not in ('call', 'email', 'meeting', 'chat')) as other_interactions,
        count(*) filter (where direction = 'outbound') as outbound_interactions,
        count(*) filter (where direction = 'inbound') as inbound_interactions,
        coalesce(sum(duration_seconds) filter (where channel = 'call'), 0) / 60.0 as call_minutes,
    from {{ ref('stg_crm__interactions') }}
    where user_id is not null
        and occurred_at >= timestamp '{{ start_day }}'
    group by user_id, cast(occurred_at as date)

),

tasks as (

    select
        owner_user_id as user_id,
        cast(completed_at as date) as activity_date,
        count(*) as tasks_completed,
    from {{ ref('stg_crm__tasks') }}
    where status = 'done'
        and completed_at is not null
        and not is_archived
        and completed_at >= timestamp '{{ start_day }}'
    group by owner_user_id, cast(completed_at as date)

),

lead_responses as (

    select
        owner_user_id as user_id,
        cast(first_response_at as date) as activity_date,
        count(*) as leads_responded,
    from {{ ref('stg_crm__leads') }}
    where owner_user_id is not null
        and first_response_at is not null
        and first_response_at >= timestamp '{{ start_day }}'
    group by owner_user_id, cast(first_response_at as date)

),

rep_days as (

    select user_id, activity_date from interactions
    union
    select user_id, activity_date from tasks
    union
    select user_id, activity_date from lead_responses

),

users as (

    select user_id, team_id from {{ ref('stg_crm__users') }}

),

final as (

    select
        rep_days.user_id || '|' || strftime(rep_days.activity_date, '%Y-%m-%d') as activity_row_id,
        rep_days.activity_date,
        rep_days.user_id,
        users.team_id,
        cast(coalesce(interactions.total_interactions, 0) as bigint) as total_interactions,
        cast(coalesce(interactions.calls, 0) as bigint) as calls,
        cast(coalesce(interactions.emails, 0) as bigint) as emails,
        cast(coalesce(interactions.meetings, 0) as bigint) as meetings,
        cast(coalesce(interactions.chats, 0) as bigint) as chats,
        cast(coalesce(interactions.other_interactions, 0) as bigint) as other_interactions,
        cast(coalesce(interactions.outbound_interactions, 0) as bigint) as outbound_interactions,
        cast(coalesce(interactions.inbound_interactions, 0) as bigint) as inbound_interactions,
        cast(coalesce(interactions.call_minutes, 0) as double) as call_minutes,
        cast(coalesce(tasks.tasks_completed, 0) as bigint) as tasks_completed,
        cast(coalesce(lead_responses.leads_responded, 0) as bigint) as leads_responded,
    from rep_days
    left join users on rep_days.user_id = users.user_id
    left join interactions
        on rep_days.user_id = interactions.user_id and rep_days.activity_date = interactions.activity_date
    left join tasks
        on rep_days.user_id = tasks.user_id and rep_days.activity_date = tasks.activity_date
    left join lead_responses
        on rep_days.user_id = lead_responses.user_id and rep_days.activity_date = lead_responses.activity_date

)

select * from final
