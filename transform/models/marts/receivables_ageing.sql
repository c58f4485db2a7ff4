-- Open receivables per division and counterparty in Exact's age groups (macros/exactonline_sides.sql).
{{ exactonline_ageing_mart('receivable') }}
