-- The trial balance per division, financial year and period: every G/L account's opening,
-- movement and closing balance, the closing split into a debit and a credit column. The debit
-- column equals the credit column in every period (tests/trial_balance_balances.sql).
select
    gl.division,
    divisions.currency as division_currency,
    gl.financial_year,
    gl.financial_period,
    gl.period_end_date,
    gl.gl_account_code,
    gl.gl_account_description,
    gl.balance_type,
    gl.gl_classification_code,
    gl.gl_classification_description,
    gl.level_1_classification_code,
    gl.level_1_classification_description,
    gl.opening_balance_dc,
    gl.debit_dc as movement_debit_dc,
    gl.credit_dc as movement_credit_dc,
    gl.closing_balance_dc,
    case when gl.closing_balance_dc > 0 then gl.closing_balance_dc else 0 end as closing_debit_dc,
    case when gl.closing_balance_dc < 0 then -gl.closing_balance_dc else 0 end as closing_credit_dc
from {{ ref('general_ledger_by_period') }} as gl
left join {{ ref('int_exactonline__divisions') }} as divisions
    on divisions.division = gl.division
