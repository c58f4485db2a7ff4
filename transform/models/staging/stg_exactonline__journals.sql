select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as journal_id,
    {{ exactonline_code('code') }} as journal_code,
    description as journal_description,
    {{ exactonline_int('type') }} as journal_type,
    {{ exactonline_code('currency') }} as journal_currency,
    {{ exactonline_id('gl_account') }} as gl_account_id
from {{ exactonline_live('journals') }} as journals
