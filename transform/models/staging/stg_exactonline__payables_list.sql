-- read/financial/PayablesList, staged (macros/exactonline_sides.sql).
{{ exactonline_stage_open_items('payables_list') }}
