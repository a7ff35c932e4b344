-- One row per customer (customer_key): the anchor account's attributes, owner and team, the accounts
-- merged into it by identity resolution, and its first and last completed order.
with resolved as (

    select * from {{ ref('int_customers_resolved') }}

),

accounts as (

    select * from {{ ref('stg_crm__accounts') }}

),

groups as (

    select
        resolved.customer_key,
        count(*) as accounts_in_group,
        string_agg(resolved.account_id, ', ' order by resolved.account_id) as account_ids,
        string_agg(distinct accounts.source_system, ', ' order by accounts.source_system) as source_systems,
        min(accounts.created_at) as created_at,
    from resolved
    inner join accounts
        on resolved.account_id = accounts.account_id
    group by resolved.customer_key

),

summary as (

    select * from {{ ref('int_customer_activity_summary') }}

),

final as (

    select
        groups.customer_key,
        anchor.account_name as customer_name,
        anchor.account_type,
        anchor.industry,
        anchor.employees,
        anchor.email,
        anchor.phone,
        anchor.city,
        anchor.country,
        anchor.region,
        anchor.source_system,
        anchor.owner_user_id,
        owners.full_name as owner_name,
        owners.team_id,
        teams.team_name,
        groups.accounts_in_group,
        groups.account_ids,
        groups.source_systems,
        groups.created_at,
        anchor.is_archived,
        summary.first_order_date,
        summary.last_order_date,
    from groups
    inner join accounts as anchor
        on groups.customer_key = anchor.account_id
    left join {{ ref('stg_crm__users') }} as owners
        on anchor.owner_user_id = owners.user_id
    left join {{ ref('stg_crm__teams') }} as teams
        on owners.team_id = teams.team_id
    left join summary
        on groups.customer_key = summary.customer_key

)

select * from final
