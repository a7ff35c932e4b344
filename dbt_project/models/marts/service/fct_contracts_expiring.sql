-- Active service contracts ending within 90 days of the as-of date, bucketed 0-30 / 31-60 / 61-90 days, with the
-- annual value at risk: contracts that neither renew automatically nor have a renewal contract yet.
with contracts as (

    select * from {{ ref('stg_crm__contracts') }}

),

renewals as (

    select distinct renewal_of_contract_id as contract_id
    from contracts
    where renewal_of_contract_id is not null and status <> 'cancelled'

),

customers as (

    select * from {{ ref('int_customers_resolved') }}

),

as_of as (

    select as_of_date from {{ ref('int_as_of_date') }}

),

expiring as (

    select
        contracts.*,
        coalesce(customers.customer_key, contracts.account_id) as customer_key,
        as_of.as_of_date,
        date_diff('day', as_of.as_of_date, contracts.end_date) as days_to_expiry,
        renewals.contract_id is not null as has_renewal,
    from contracts
    cross join as_of
    left join customers on contracts.account_id = customers.account_id
    left join renewals on contracts.contract_id = renewals.contract_id
    where contracts.status = 'active'
        and contracts.end_date >= as_of.as_of_date
        and contracts.end_date <= as_of.as_of_date + 90

),

final as (

    select
        contract_id,
        account_id,
        customer_key,
        product_id,
        start_date,
        end_date,
        as_of_date,
        cast(days_to_expiry as bigint) as days_to_expiry,
        case
            when days_to_expiry <= 30 then '0-30'
            when days_to_expiry <= 60 then '31-60'
            else '61-90'
        end as expiry_bucket,
        days_to_expiry <= 30 as expires_within_30_days,
        days_to_expiry <= 60 as expires_within_60_days,
        true as expires_within_90_days,
        annual_value,
        auto_renew,
        has_renewal,
        case when auto_renew or has_renewal then 0.0 else annual_value end as value_at_risk,
    from expiring

)

select * from final
