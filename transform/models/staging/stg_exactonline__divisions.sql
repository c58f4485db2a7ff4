-- system/Divisions lists every division of the user, and the tap reads it in each division:
-- one row per (division read, division listed). int_exactonline__divisions keeps one per code.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_bigint('code') }} as division_code,
    description as division_description,
    {{ exactonline_code('currency') }} as currency,
    {{ exactonline_code('country') }} as country
from {{ exactonline_live('system_divisions') }} as divisions
