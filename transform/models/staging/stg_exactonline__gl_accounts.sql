-- BalanceType B = balance sheet, W = profit and loss ("winst en verlies"); BalanceSide D/C is
-- the account's normal side. Type is Exact's GLAccounts.Type code (52 = Retained earnings).
select
    {{ exactonline_bigint('division') }} as division,
    {{ exactonline_id('id') }} as gl_account_id,
    {{ exactonline_code('code') }} as gl_account_code,
    description as gl_account_description,
    {{ exactonline_int('type') }} as gl_account_type,
    type_description as gl_account_type_description,
    upper(balance_type) as balance_type,
    upper(balance_side) as balance_side,
    is_blocked,
    modified as modified_at
from {{ exactonline_live('gl_accounts') }} as gl_accounts
