-- One row per campaign: reach, responses, leads, converted customers, cost per lead and per customer, the won
-- revenue it sourced and its ROI (see the `campaign_roi` docs).
with campaigns as (

    select * from {{ ref('stg_crm__campaigns') }}

),

members as (

    select
        campaign_id,
        count(*) as members,
        count(*) filter (where responded_at is not null or status in ('responded', 'converted')) as responses,
    from {{ ref('stg_crm__campaign_members') }}
    group by campaign_id

),

customers as (

    select * from {{ ref('int_customers_resolved') }}

),

leads as (

    select
        leads.campaign_id,
        count(*) as leads,
        count(*) filter (where leads.converted_account_id is not null) as converted_leads,
        count(distinct coalesce(customers.customer_key, leads.converted_account_id)) as customers_converted,
    from {{ ref('stg_crm__leads') }} as leads
    left join customers on leads.converted_account_id = customers.account_id
    where leads.campaign_id is not null
    group by leads.campaign_id

),

opportunities as (

    select
        campaign_id,
        count(*) as opportunities,
        count(*) filter (where is_won) as won_opportunities,
        coalesce(sum(amount) filter (where is_won), 0) as revenue_attributed,
    from {{ ref('fct_opportunities') }}
    where campaign_id is not null
    group by campaign_id

),

final as (

    select
        campaigns.campaign_id,
        campaigns.campaign_name,
        campaigns.channel,
        campaigns.start_date,
        campaigns.end_date,
        campaigns.budget,
        campaigns.cost,
        cast(coalesce(members.members, 0) as bigint) as members,
        cast(coalesce(members.responses, 0) as bigint) as responses,
        cast(members.responses as double) / nullif(members.members, 0) as response_rate,
        cast(coalesce(leads.leads, 0) as bigint) as leads,
        cast(coalesce(leads.converted_leads, 0) as bigint) as converted_leads,
        cast(leads.converted_leads as double) / nullif(leads.leads, 0) as lead_conversion_rate,
        cast(coalesce(leads.customers_converted, 0) as bigint) as customers_converted,
        cast(coalesce(opportunities.opportunities, 0) as bigint) as opportunities,
        cast(coalesce(opportunities.won_opportunities, 0) as bigint) as won_opportunities,
        cast(coalesce(opportunities.revenue_attributed, 0) as double) as revenue_attributed,
        campaigns.cost / nullif(leads.leads, 0) as cost_per_lead,
        campaigns.cost / nullif(leads.customers_converted, 0) as cost_per_customer,
        (coalesce(opportunities.revenue_attributed, 0) - campaigns.cost) / nullif(campaigns.cost, 0) as roi,
    from campaigns
    left join members on campaigns.campaign_id = members.campaign_id
    left join leads on campaigns.campaign_id = leads.campaign_id
    left join opportunities on campaigns.campaign_id = opportunities.campaign_id

)

select * from final
