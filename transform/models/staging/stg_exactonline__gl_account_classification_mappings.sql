-- One class per G/L account and scheme. Read in full (no Modified): latest read only.
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as mapping_id,
    {{ exactonline_id('gl_account') }} as gl_account_id,
    {{ exactonline_id('classification') }} as gl_classification_id,
    {{ exactonline_id('gl_scheme_id') }} as gl_scheme_id,
    {{ exactonline_code('gl_scheme_code') }} as gl_scheme_code
from {{ exactonline_latest_read('gl_account_classification_mappings') }} as mappings
