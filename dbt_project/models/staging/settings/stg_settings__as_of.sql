-- Where the as-of date comes from (crm.yaml `as_of`): the data, the machine clock (live) or a fixed date.
select
    cast(as_of_mode as varchar) as as_of_mode,
    cast(fixed_date as date) as fixed_date,
from {{ source('settings', 'as_of') }}
