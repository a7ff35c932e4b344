-- The data's "today", computed here once and read by every mart (crm.yaml `as_of`, docs/settings.md):
--   data  (default) the date of the latest event in the warehouse, across entities: orders, interactions, deals
--         created, changed stage or closed, leads, tickets opened or resolved, invoices, payments, tasks done,
--         campaign responses. The same data always gives the same marts, whenever they are built; a home with
--         only deals is dated by its deals. Only a warehouse without any event falls back to the machine date.
--   live  the machine's date (data kept current by a live feed).
--   fixed the date crm.yaml names.
with events as (

    select max(order_date) as event_date from {{ ref('stg_crm__orders') }}
    union all
    select max(cast(occurred_at as date)) from {{ ref('stg_crm__interactions') }}
    union all
    select max(cast(greatest(created_at, closed_at) as date)) from {{ ref('stg_crm__opportunities') }}
    union all
    select max(cast(changed_at as date)) from {{ ref('stg_crm__opportunity_stage_history') }}
    union all
    select max(cast(greatest(created_at, converted_at) as date)) from {{ ref('stg_crm__leads') }}
    union all
    select max(cast(greatest(created_at, resolved_at) as date)) from {{ ref('stg_crm__tickets') }}
    union all
    select max(invoice_date) from {{ ref('stg_crm__invoices') }}
    union all
    select max(payment_date) from {{ ref('stg_crm__payments') }}
    union all
    select max(cast(completed_at as date)) from {{ ref('stg_crm__tasks') }}
    union all
    select max(cast(greatest(added_at, responded_at) as date)) from {{ ref('stg_crm__campaign_members') }}

),

latest_event as (

    select max(event_date) as latest_date from events

),

setting as (

    select as_of_mode, fixed_date from {{ ref('stg_settings__as_of') }}

),

final as (

    select
        case setting.as_of_mode
            when 'live' then current_date
            when 'fixed' then setting.fixed_date
            else coalesce(latest_event.latest_date, current_date)
        end as as_of_date,
        setting.as_of_mode,
    from latest_event
    cross join setting

)

select * from final
