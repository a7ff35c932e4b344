-- The reporting currency and the rates of the others (crm.yaml `currency`): 1 unit = rate_to_reporting units.
select
    cast(currency as varchar) as currency,
    cast(rate_to_reporting as double) as rate_to_reporting,
    cast(is_reporting as boolean) as is_reporting,
    cast(symbol as varchar) as symbol,
from {{ source('settings', 'currencies') }}
