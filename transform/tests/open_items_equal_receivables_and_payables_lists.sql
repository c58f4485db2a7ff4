-- Proves: per division and counterparty, what the ledger leaves open on the receivables and
-- payables accounts (invoices whose lines, with their payments, do not sum to zero) equals
-- Exact's ReceivablesList / PayablesList (what is left of each unpaid invoice).
-- A failure usually means: payment or invoice lines missing (see the ReportingBalance test), the
-- lists read at another time than the lines, or - with a loader that ignores ACTIVATE_VERSION
-- (target-duckdb) - items paid since an earlier read still in the table: lower
-- exactonline__full_table_window_minutes below the time between runs.
{% set differences %}
with ours as (
    select division, 'receivable' as open_item_kind, account_id, sum(open_amount_dc) as amount,
        count(*) as item_count
    from {{ exactonline_open_items('receivable') }} as receivable
    group by division, account_id
    union all
    select division, 'payable', account_id, sum(open_amount_dc), count(*)
    from {{ exactonline_open_items('payable') }} as payable
    group by division, account_id
),

exacts as (
    select division, 'receivable' as open_item_kind, account_id, max(account_code) as account_code,
        sum(amount) as amount, count(*) as item_count
    from {{ ref('stg_exactonline__receivables_list') }}
    group by division, account_id
    union all
    select division, 'payable', account_id, max(account_code), sum(amount), count(*)
    from {{ ref('stg_exactonline__payables_list') }}
    group by division, account_id
),

compared as (
    select
        coalesce(ours.division, exacts.division) as division,
        coalesce(ours.open_item_kind, exacts.open_item_kind) as open_item_kind,
        coalesce(ours.account_id, exacts.account_id) as account_id,
        coalesce(accounts.account_code, exacts.account_code) as account_code,
        coalesce(ours.amount, 0) as our_amount,
        coalesce(exacts.amount, 0) as exact_amount,
        coalesce(ours.item_count, 0) as our_item_count,
        coalesce(exacts.item_count, 0) as exact_item_count
    from ours
    full outer join exacts
        on exacts.division = ours.division
        and exacts.open_item_kind = ours.open_item_kind
        and exacts.account_id = ours.account_id
    left join {{ ref('stg_exactonline__accounts') }} as accounts
        on accounts.division = coalesce(ours.division, exacts.division)
        and accounts.account_id = coalesce(ours.account_id, exacts.account_id)
)

select
    compared.*,
    'division ' || {{ exactonline_text('division') }} || ', ' || open_item_kind
        || 's of account ' || {{ exactonline_text('account_code') }}
        || ': open in the ledger ' || {{ exactonline_money('our_amount') }}
        || ' (' || {{ exactonline_text('our_item_count') }} || ' invoices), '
        || case open_item_kind when 'receivable' then 'ReceivablesList ' else 'PayablesList ' end
        || {{ exactonline_money('exact_amount') }}
        || ' (' || {{ exactonline_text('exact_item_count') }} || ' invoices), difference '
        || {{ exactonline_money('our_amount - exact_amount') }} as difference
from compared
where abs(our_amount - exact_amount) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('open items vs ReceivablesList/PayablesList', differences) }}
