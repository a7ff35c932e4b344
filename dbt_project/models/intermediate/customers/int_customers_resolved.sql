-- Identity resolution: one customer_key per real customer across the CRM store and webshop/ERP exports.
-- Rules, order and tie-breaks are documented in models/docs.md (identity_resolution).
with recursive accounts as (

    select
        account_id,
        source_system = 'crm' as is_crm,
        {{ normalise_email('email') }} as email_key,
        {{ normalise_phone('phone') }} as phone_key,
        {{ normalise_name('account_name') }} || ' | ' || {{ normalise_text('city') }} as name_city_key,
    from {{ ref('stg_crm__accounts') }}

),

match_keys as (

    select account_id, is_crm, email_key, 1 as rule_rank, 'email' as match_rule, email_key as match_key,
    from accounts
    where email_key is not null

    union all

    select account_id, is_crm, email_key, 2 as rule_rank, 'phone' as match_rule, phone_key as match_key,
    from accounts
    where phone_key is not null

    union all

    select account_id, is_crm, email_key, 3 as rule_rank, 'name_city' as match_rule, name_city_key as match_key,
    from accounts
    where name_city_key is not null

),

candidate_matches as (

    -- a non-CRM account and every other account sharing one of its keys
    select
        account.account_id,
        candidate.account_id as candidate_id,
        candidate.is_crm as candidate_is_crm,
        account.rule_rank,
        account.match_rule,
    from match_keys as account
    inner join match_keys as candidate
        on account.match_rule = candidate.match_rule
        and account.match_key = candidate.match_key
        and account.account_id <> candidate.account_id
    where
        not account.is_crm
        -- a shared name is no evidence when both carry different emails
        and not (
            account.match_rule = 'name_city'
            and account.email_key is not null
            and candidate.email_key is not null
            and account.email_key <> candidate.email_key
        )

),

best_match as (

    -- CRM accounts first, then the strongest rule, then the smallest id; among non-CRM accounts only
    -- smaller ids are followed, so pointers always lead to a CRM account or to a group's smallest id
    select
        account_id,
        candidate_id as matched_account_id,
        match_rule,
    from candidate_matches
    where candidate_is_crm or candidate_id < account_id
    qualify row_number() over (
        partition by account_id
        order by candidate_is_crm desc, rule_rank, candidate_id
    ) = 1

),

pointers as (

    select
        accounts.account_id,
        best_match.matched_account_id,
        best_match.match_rule,
        coalesce(best_match.matched_account_id, accounts.account_id) as target_id,
    from accounts
    left join best_match
        on accounts.account_id = best_match.account_id

),

chain as (

    -- follow pointers to the end of the chain: each hop leads to a CRM account or a smaller id, so it ends
    select account_id, target_id, 0 as hops,
    from pointers

    union all

    select chain.account_id, next_hop.target_id, chain.hops + 1 as hops,
    from chain
    inner join pointers as next_hop
        on chain.target_id = next_hop.account_id
        and next_hop.target_id <> next_hop.account_id

),

resolved as (

    select account_id, target_id as customer_key,
    from chain
    qualify row_number() over (partition by account_id order by hops desc) = 1

),

group_sizes as (

    select customer_key, count(*) as accounts_in_group,
    from resolved
    group by customer_key

),

final as (

    select
        pointers.account_id,
        resolved.customer_key,
        case
            when pointers.match_rule is not null then pointers.match_rule
            when group_sizes.accounts_in_group > 1 then 'anchor'
            else 'unique'
        end as match_rule,
        pointers.matched_account_id,
    from pointers
    inner join resolved
        on pointers.account_id = resolved.account_id
    inner join group_sizes
        on resolved.customer_key = group_sizes.customer_key

)

select * from final
