{{ config(enabled=var('exactonline__using_ageing_lists')) }}
-- Proves: per division and counterparty, the ledger's open items, aged on the day Exact's
-- AgingReceivablesList / AgingPayablesList were read (days since the invoice date, Exact's four
-- age groups), equal those lists in every age group and in total.
-- The read day is the date of `_sdc_extracted_at` (UTC): a read just after midnight in
-- Amsterdam can age by one day less than Exact did. Failures otherwise mean what they mean in
-- open_items_equal_receivables_and_payables_lists.
{% set differences %}
with read_days as (
    select division, 'receivable' as open_item_kind, cast(max(_sdc_extracted_at) as date) as read_on
    from {{ ref('stg_exactonline__aging_receivables_list') }}
    group by division
    union all
    select division, 'payable', cast(max(_sdc_extracted_at) as date)
    from {{ ref('stg_exactonline__aging_payables_list') }}
    group by division
),

items as (
    select division, 'receivable' as open_item_kind, account_id, invoice_date, open_amount_dc
    from {{ exactonline_open_items('receivable') }} as receivable
    union all
    select division, 'payable', account_id, invoice_date, open_amount_dc
    from {{ exactonline_open_items('payable') }} as payable
),

ours as (
    select
        items.division, items.open_item_kind, items.account_id,
        {% for group in [1, 2, 3, 4] %}
        sum(case when {{ exactonline_age_group(dbt.datediff('items.invoice_date', 'read_days.read_on', 'day')) }} = {{ group }}
            then open_amount_dc else 0 end) as age_group_{{ group }}_amount,
        {% endfor %}
        sum(open_amount_dc) as total_amount
    from items
    inner join read_days
        on read_days.division = items.division and read_days.open_item_kind = items.open_item_kind
    group by items.division, items.open_item_kind, items.account_id
),

exacts as (
    select division, 'receivable' as open_item_kind, account_id, account_code,
        age_group_1_amount, age_group_2_amount, age_group_3_amount, age_group_4_amount, total_amount
    from {{ ref('stg_exactonline__aging_receivables_list') }}
    union all
    select division, 'payable', account_id, account_code,
        age_group_1_amount, age_group_2_amount, age_group_3_amount, age_group_4_amount, total_amount
    from {{ ref('stg_exactonline__aging_payables_list') }}
),

compared as (
    select
        coalesce(ours.division, exacts.division) as division,
        coalesce(ours.open_item_kind, exacts.open_item_kind) as open_item_kind,
        coalesce(ours.account_id, exacts.account_id) as account_id,
        exacts.account_code,
        {% for group in [1, 2, 3, 4, 'total'] %}
        {% set column = 'total_amount' if group == 'total' else 'age_group_' ~ group ~ '_amount' %}
        coalesce(ours.{{ column }}, 0) as our_{{ column }},
        coalesce(exacts.{{ column }}, 0) as exact_{{ column }},
        {% endfor %}
        1 as compared
    from ours
    full outer join exacts
        on exacts.division = ours.division
        and exacts.open_item_kind = ours.open_item_kind
        and exacts.account_id = ours.account_id
)

select
    compared.*,
    'division ' || {{ exactonline_text('division') }} || ', ' || open_item_kind
        || 's of account ' || {{ exactonline_text('account_code') }} || ': ledger aged '
        {% for group in [1, 2, 3, 4] %}
        || {{ exactonline_money('our_age_group_' ~ group ~ '_amount') }} || '{{ " / " if not loop.last else "" }}'
        {% endfor %}
        || ' (total ' || {{ exactonline_money('our_total_amount') }} || '), ageing list '
        {% for group in [1, 2, 3, 4] %}
        || {{ exactonline_money('exact_age_group_' ~ group ~ '_amount') }} || '{{ " / " if not loop.last else "" }}'
        {% endfor %}
        || ' (total ' || {{ exactonline_money('exact_total_amount') }} || ')' as difference
from compared
where
    {% for group in [1, 2, 3, 4] %}
    abs(our_age_group_{{ group }}_amount - exact_age_group_{{ group }}_amount) >= {{ var('exactonline__tolerance') }} or
    {% endfor %}
    abs(our_total_amount - exact_total_amount) >= {{ var('exactonline__tolerance') }}
{% endset %}
{{ exactonline_reconciliation('open items vs ageing lists', differences) }}
