{{ config(enabled=var('exactonline__using_opening_balances')) }}
-- openingbalance/{Current,Previous}Year/Processed: per balance-sheet account not at zero, its
-- balance on the first day of the year, earlier years' results carried to retained earnings
-- (docs/fake-books.md). Amount is positive with BalanceSide D/C: signed here, debit positive.
{% for stream in ['opening_balance_current_year_processed', 'opening_balance_previous_year_processed'] %}
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('gl_account') }} as gl_account_id,
    {{ exactonline_code('gl_account_code') }} as gl_account_code,
    {{ exactonline_int('reporting_year') }} as reporting_year,
    case when upper(balance_side) = 'C' then -1 else 1 end
        * {{ exactonline_amount('amount') }} as opening_balance_dc,
    '{{ stream }}' as source_stream
from {{ exactonline_latest_read(stream) }} as opening
{% if not loop.last %}union all{% endif %}
{% endfor %}
