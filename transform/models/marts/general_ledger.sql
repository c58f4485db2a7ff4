-- Every ledger line with its G/L account and class, journal, period, entry and counterparty,
-- per division with the division's currency. Amounts: amount_dc in the division's currency,
-- debit positive (Exact's sign); debit_dc/credit_dc both positive.
select
    lines.division,
    divisions.division_description,
    divisions.currency as division_currency,
    lines.transaction_line_id,
    lines.entry_id,
    lines.entry_number,
    lines.line_number,
    lines.entry_type,
    lines.is_year_end_entry,
    lines.status,
    lines.transaction_date,
    lines.financial_year,
    lines.financial_period,
    periods.period_start_date,
    periods.period_end_date,
    lines.journal_code,
    journals.journal_description,
    journals.journal_type,
    lines.gl_account_id,
    coalesce(gl.gl_account_code, lines.gl_account_code) as gl_account_code,
    gl.gl_account_description,
    gl.gl_account_type,
    gl.balance_type,
    gl.balance_side,
    gl.gl_classification_code,
    gl.gl_classification_description,
    gl.level_1_classification_code,
    gl.level_1_classification_description,
    lines.account_id,
    coalesce(accounts.account_code, lines.account_code) as account_code,
    coalesce(accounts.account_name, lines.account_name) as account_name,
    lines.item_id,
    coalesce(items.item_code, lines.item_code) as item_code,
    items.item_description,
    lines.description,
    lines.invoice_number,
    lines.due_date,
    lines.your_ref,
    lines.vat_code,
    lines.vat_percentage,
    lines.cost_center,
    lines.cost_unit,
    lines.quantity,
    lines.currency,
    lines.amount_fc,
    lines.exchange_rate,
    lines.amount_dc,
    case when lines.amount_dc > 0 then lines.amount_dc else 0 end as debit_dc,
    case when lines.amount_dc < 0 then -lines.amount_dc else 0 end as credit_dc,
    lines.created_at,
    lines.modified_at
from {{ ref('stg_exactonline__transaction_lines') }} as lines
left join {{ ref('int_exactonline__divisions') }} as divisions
    on divisions.division = lines.division
left join {{ ref('int_exactonline__gl_accounts') }} as gl
    on gl.division = lines.division and gl.gl_account_id = lines.gl_account_id
left join {{ ref('stg_exactonline__journals') }} as journals
    on journals.division = lines.division and journals.journal_code = lines.journal_code
left join {{ ref('stg_exactonline__financial_periods') }} as periods
    on periods.division = lines.division
    and periods.financial_year = lines.financial_year
    and periods.financial_period = lines.financial_period
left join {{ ref('stg_exactonline__accounts') }} as accounts
    on accounts.division = lines.division and accounts.account_id = lines.account_id
left join {{ ref('stg_exactonline__items') }} as items
    on items.division = lines.division and items.item_id = lines.item_id
