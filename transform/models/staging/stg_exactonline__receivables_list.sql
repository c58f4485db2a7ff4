-- read/financial/ReceivablesList, staged (macros/exactonline_sides.sql).
{{ exactonline_stage_open_items('receivables_list') }}
