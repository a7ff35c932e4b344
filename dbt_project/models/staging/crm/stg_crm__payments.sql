{# Generated from pipelines/contract/crm_contract.yaml (and dbt_overrides.yaml) by `crm contract dbt`; do not edit by hand. -#}
-- payments: contract columns unchanged (names and types), plus the lineage columns `_source` and `_ingested_at`.
with source as (

    select * from {{ source('crm', 'payments') }}

),

final as (

    select
        cast(payment_id as varchar) as payment_id,
        cast(invoice_id as varchar) as invoice_id,
        cast(payment_date as date) as payment_date,
        cast(amount as double) as amount,
        cast(method as varchar) as method,
        cast(updated_at as timestamp) as updated_at,
        _source,
        _ingested_at,
    from source

)

select * from final
