-- Proves: the lines of every entry (EntryID) sum to zero in the division's currency, as every
-- entry in Exact does (docs/fake-books.md, "Entries balance").
-- A failure means lines of an entry are missing or extra: usually a page of lines lost in a run
-- stopped for the daily budget, or a deletion older than Exact's two-month log that the
-- warehouse never heard of (the other lines of a changed entry arrived). Run the tap with
-- `resync_streams: [transaction_lines]` once (docs/deletions.md).
-- On general_ledger, not on the staging model: in `dbt build` a failing test skips what is built
-- from all of its models, and the other reconciliations should still run and say more.
{% set differences %}
select
    division,
    entry_id,
    min(entry_number) as entry_number,
    min(journal_code) as journal_code,
    min(financial_year) as financial_year,
    min(financial_period) as financial_period,
    count(*) as line_count,
    sum(amount_dc) as imbalance_dc,
    'division ' || {{ exactonline_text('division') }}
        || ', entry ' || {{ exactonline_text('min(entry_number)') }}
        || ' (journal ' || {{ exactonline_text('min(journal_code)') }}
        || ', period ' || {{ exactonline_period_text('min(financial_year)', 'min(financial_period)') }}
        || ', ' || {{ exactonline_text('count(*)') }} || ' lines'
        || ', G/L accounts ' || {{ exactonline_text('min(gl_account_code)') }} || '..' || {{ exactonline_text('max(gl_account_code)') }}
        || '): lines sum to ' || {{ exactonline_money('sum(amount_dc)') }} || ', not 0' as difference
from {{ ref('general_ledger') }}
group by division, entry_id
having abs(sum(amount_dc)) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('entries_balance', differences) }}
