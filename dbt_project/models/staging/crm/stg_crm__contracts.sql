{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- contracts: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'contracts') }}

),

final as (

    select
        cast(contract_id as varchar) as contract_id,
        cast(account_id as varchar) as account_id,
        cast(product_id as varchar) as product_id,
        cast(start_date as date) as start_date,
        cast(end_date as date) as end_date,
        cast(annual_value as double) as annual_value,
        cast(status as varchar) as status,
        cast(auto_renew as boolean) as auto_renew,
        cast(renewal_of_contract_id as varchar) as renewal_of_contract_id,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
