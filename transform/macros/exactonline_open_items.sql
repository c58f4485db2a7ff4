{#- Open items (one row per division, counterparty and invoice) from the ledger, as of a date
    (a SQL date expression) or, without one, as of the last line loaded. The invoice date is
    the date of the invoice's own entry (sales 20 / purchase 30, TransactionLines.Type). -#}
{% macro exactonline_open_items(kind, as_of=none) %}
    (
        select
            division,
            account_id,
            invoice_number,
            coalesce(
                min(case when entry_type in (20, 30) then transaction_date end),
                min(transaction_date)
            ) as invoice_date,
            max(due_date) as due_date,
            sum(amount_dc) as open_amount_dc
        from {{ ref('int_exactonline__open_item_lines') }}
        where open_item_kind = '{{ kind }}'
        {%- if as_of is not none %}
            and transaction_date <= {{ as_of }}
        {%- endif %}
        group by division, account_id, invoice_number
        having sum(amount_dc) <> 0
    )
{% endmacro %}
