-- First- and last-touch attribution of won revenue (see the `attribution` docs). The touches of a won deal are
-- the campaign memberships its lead or its account's contacts engaged with and the inbound interactions of its
-- lead or account, between `attribution_lookback_days` before the deal was created and its close. Each won deal
-- gets one row per model; a deal without touches is attributed to touch_type 'none', so won revenue reconciles.
{%- set lookback_days = var('attribution_lookback_days', 180) %}

with won_deals as (

    select
        opportunity_id,
        account_id,
        lead_id,
        owner_user_id,
        amount,
        created_at,
        closed_at,
        closed_month,
    from {{ ref('fct_opportunities') }}
    where is_won

),

campaigns as (

    select campaign_id, channel from {{ ref('stg_crm__campaigns') }}

),

engaged_members as (

    select
        members.member_id,
        members.campaign_id,
        members.lead_id,
        contacts.account_id,
        campaigns.channel,
        coalesce(members.responded_at, members.added_at) as touch_at,
    from {{ ref('stg_crm__campaign_members') }} as members
    inner join campaigns on members.campaign_id = campaigns.campaign_id
    left join {{ ref('stg_crm__contacts') }} as contacts on members.contact_id = contacts.contact_id
    where members.status in ('opened', 'clicked', 'responded', 'converted')

),

inbound_interactions as (

    select interaction_id, account_id, lead_id, channel, occurred_at as touch_at,
    from {{ ref('stg_crm__interactions') }}
    where direction = 'inbound'

),

touches as (

    -- campaign touches through the deal's lead
    select won_deals.opportunity_id, 'campaign' as touch_type, engaged_members.member_id as touch_id,
        engaged_members.campaign_id, engaged_members.channel, engaged_members.touch_at,
    from won_deals
    inner join engaged_members on won_deals.lead_id = engaged_members.lead_id

    union

    -- campaign touches through a contact of the deal's account
    select won_deals.opportunity_id, 'campaign' as touch_type, engaged_members.member_id as touch_id,
        engaged_members.campaign_id, engaged_members.channel, engaged_members.touch_at,
    from won_deals
    inner join engaged_members on won_deals.account_id = engaged_members.account_id

    union

    -- inbound interactions of the deal's lead
    select won_deals.opportunity_id, 'interaction' as touch_type, inbound_interactions.interaction_id as touch_id,
        null as campaign_id, inbound_interactions.channel, inbound_interactions.touch_at,
    from won_deals
    inner join inbound_interactions on won_deals.lead_id = inbound_interactions.lead_id

    union

    -- inbound interactions of the deal's account
    select won_deals.opportunity_id, 'interaction' as touch_type, inbound_interactions.interaction_id as touch_id,
        null as campaign_id, inbound_interactions.channel, inbound_interactions.touch_at,
    from won_deals
    inner join inbound_interactions on won_deals.account_id = inbound_interactions.account_id

),

touches_in_window as (

    select
        touches.*,
        count(*) over (partition by touches.opportunity_id) as touches_in_window,
        row_number() over (
            partition by touches.opportunity_id
            order by touches.touch_at, touches.touch_type, touches.touch_id
        ) as first_rank,
        row_number() over (
            partition by touches.opportunity_id
            order by touches.touch_at desc, touches.touch_type, touches.touch_id
        ) as last_rank,
    from touches
    inner join won_deals on touches.opportunity_id = won_deals.opportunity_id
    where touches.touch_at <= won_deals.closed_at
        and touches.touch_at >= won_deals.created_at - interval {{ lookback_days }} day

),

models as (

    select * from (values ('first_touch'), ('last_touch')) as models (attribution_model)

),

final as (

    select
        won_deals.opportunity_id || '|' || models.attribution_model as attribution_row_id,
        won_deals.opportunity_id,
        models.attribution_model,
        won_deals.owner_user_id,
        won_deals.closed_at,
        won_deals.closed_month,
        coalesce(touches_in_window.touch_type, 'none') as touch_type,
        touches_in_window.touch_id,
        touches_in_window.campaign_id,
        coalesce(touches_in_window.channel, 'unattributed') as channel,
        touches_in_window.touch_at,
        cast(coalesce(touches_in_window.touches_in_window, 0) as bigint) as touches_in_window,
        won_deals.amount as attributed_revenue,
    from won_deals
    cross join models
    left join touches_in_window
        on won_deals.opportunity_id = touches_in_window.opportunity_id
        and (
            (models.attribution_model = 'first_touch' and touches_in_window.first_rank = 1)
            or (models.attribution_model = 'last_touch' and touches_in_window.last_rank = 1)
        )

)

select * from final
