-- Customer interactions for the customer 360 timeline: every logged call, email, meeting, chat, web visit,
-- form, social touch or event that can be tied to a customer - through its account, or through the contact
-- it was with when the log names no account. Interactions with a lead only (no customer yet) are left out.
with interactions as (

    select * from {{ ref('stg_crm__interactions') }}

),

contacts as (

    select contact_id, account_id, from {{ ref('stg_crm__contacts') }}

),

customers as (

    select account_id, customer_key, from {{ ref('int_customers_resolved') }}

),

tied as (

    select
        interactions.interaction_id,
        coalesce(interactions.account_id, contacts.account_id) as account_id,
        interactions.contact_id,
        interactions.occurred_at,
        interactions.channel,
        interactions.direction,
        interactions.outcome,
        interactions.user_id,
        interactions.duration_seconds,
    from interactions
    left join contacts
        on interactions.contact_id = contacts.contact_id

),

final as (

    select
        tied.interaction_id,
        customers.customer_key,
        tied.account_id,
        tied.contact_id,
        tied.occurred_at,
        tied.channel,
        tied.direction,
        tied.outcome,
        tied.user_id,
        tied.duration_seconds,
    from tied
    inner join customers
        on tied.account_id = customers.account_id

)

select * from final
