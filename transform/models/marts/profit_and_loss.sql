-- The profit and loss account per division, financial year and period, per P&L account
-- (BalanceType W) grouped by its class. Signs as an accountant reads them:
--   result_amount = -amount_dc: revenue positive, costs negative; its sum is the result;
--   revenue / costs: both positive, split by the account's BalanceSide (C revenue, D costs),
--   the way ProfitLossOverview splits them (docs/fake-books.md).
-- year_to_date_result is the result from period 1 up to and including this period.
select
    gl.division,
    divisions.currency as division_currency,
    gl.financial_year,
    gl.financial_period,
    gl.period_start_date,
    gl.period_end_date,
    gl.level_1_classification_code,
    gl.level_1_classification_description,
    gl.gl_classification_code,
    gl.gl_classification_description,
    gl.gl_account_code,
    gl.gl_account_description,
    gl.balance_side,
    gl.movement_dc as amount_dc,
    -gl.movement_dc as result_amount,
    case when gl.balance_side = 'C' then -gl.movement_dc else 0 end as revenue,
    case when gl.balance_side = 'C' then 0 else gl.movement_dc end as costs,
    -gl.closing_balance_dc as year_to_date_result,
    gl.line_count
from {{ ref('general_ledger_by_period') }} as gl
left join {{ ref('int_exactonline__divisions') }} as divisions
    on divisions.division = gl.division
where gl.balance_type = 'W'
