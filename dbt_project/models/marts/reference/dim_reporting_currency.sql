-- The reporting currency every money figure of the marts is in (crm.yaml `currency.reporting`) and the symbol
-- the portal shows with it. One row.
select
    currency,
    symbol,
from {{ ref('stg_settings__currencies') }}
where is_reporting
