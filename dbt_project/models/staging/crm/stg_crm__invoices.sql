{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- invoices: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'invoices') }}

),

final as (

    select
        cast(invoice_id as varchar) as invoice_id,
        cast(account_id as varchar) as account_id,
        cast(order_id as varchar) as order_id,
        cast(invoice_date as date) as invoice_date,
        cast(due_date as date) as due_date,
        cast(amount as double) as amount,
        cast(status as varchar) as status,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
