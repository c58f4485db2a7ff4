-- Proves: the lines the tap loaded add up to Exact's own ledger figures. Per division, G/L
-- account, financial year and period, general_ledger_by_period's movement and line count equal
-- the sum of ReportingBalance's Amount and Count over its entry types and statuses (within a cent),
-- both without the year-end closing's entries (Types 320-328).
-- A failure usually means: lines missing (a run stopped for the daily budget before the last
-- page, or transaction_lines not selected in a division) -> run the tap again; lines that Exact
-- deleted more than two months ago still in the warehouse -> `resync_streams:
-- [transaction_lines]` for one run; or the two streams read at different times (ReportingBalance
-- is read in full once per full_table_interval while lines arrive every run) -> run with
-- `--full-refresh` or compare after a run that read both.
{% set differences %}
with ours as (
    select division, gl_account_id, gl_account_code, financial_year, financial_period,
        movement_dc, line_count
    from {{ ref('general_ledger_by_period') }}
    where line_count > 0
),

exacts as (
    select division, gl_account_id, max(gl_account_code) as gl_account_code,
        reporting_year as financial_year, reporting_period as financial_period,
        sum(amount) as movement_dc, sum(line_count) as line_count
    from {{ ref('stg_exactonline__reporting_balance') }}
    where not is_year_end_entry  -- as general_ledger_by_period
    group by division, gl_account_id, reporting_year, reporting_period
),

compared as (
    select
        coalesce(ours.division, exacts.division) as division,
        coalesce(ours.gl_account_code, exacts.gl_account_code) as gl_account_code,
        coalesce(ours.financial_year, exacts.financial_year) as financial_year,
        coalesce(ours.financial_period, exacts.financial_period) as financial_period,
        coalesce(ours.movement_dc, 0) as our_movement_dc,
        coalesce(exacts.movement_dc, 0) as exact_movement_dc,
        coalesce(ours.line_count, 0) as our_line_count,
        coalesce(exacts.line_count, 0) as exact_line_count
    from ours
    full outer join exacts
        on exacts.division = ours.division
        and exacts.gl_account_id = ours.gl_account_id
        and exacts.financial_year = ours.financial_year
        and exacts.financial_period = ours.financial_period
)

select
    compared.*,
    our_movement_dc - exact_movement_dc as movement_difference_dc,
    'division ' || {{ exactonline_text('division') }}
        || ', G/L account ' || {{ exactonline_text('gl_account_code') }}
        || ', period ' || {{ exactonline_period_text('financial_year', 'financial_period') }}
        || ': ledger lines ' || {{ exactonline_money('our_movement_dc') }}
        || ' in ' || {{ exactonline_text('our_line_count') }} || ' lines'
        || ', ReportingBalance ' || {{ exactonline_money('exact_movement_dc') }}
        || ' in ' || {{ exactonline_text('exact_line_count') }} || ' lines'
        || ' (difference ' || {{ exactonline_money('our_movement_dc - exact_movement_dc') }}
        || ', ' || {{ exactonline_text('our_line_count - exact_line_count') }} || ' lines)' as difference
from compared
where abs(our_movement_dc - exact_movement_dc) >= {{ var('exactonline__tolerance') }}
    or our_line_count <> exact_line_count
{% endset %}
{{ exactonline_reconciliation('general_ledger_by_period vs ReportingBalance', differences) }}
