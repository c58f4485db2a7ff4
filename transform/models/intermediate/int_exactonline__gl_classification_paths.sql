-- Each classification with its root (e.g. B Balans, W Winst- en verliesrekening) and its
-- ancestor one level below the root (e.g. BA Activa, WOmz Netto-omzet): the reports group by
-- those. Exact's tree can be several levels deep (RGS has five), hence the recursion.
with recursive paths as (
    select
        division,
        gl_classification_id,
        gl_classification_id as root_id,
        cast(null as {{ dbt.type_string() }}) as level_1_id,
        0 as depth
    from {{ ref('stg_exactonline__gl_classifications') }}
    where parent_gl_classification_id is null

    union all

    select
        child.division,
        child.gl_classification_id,
        paths.root_id,
        coalesce(paths.level_1_id, child.gl_classification_id) as level_1_id,
        paths.depth + 1 as depth
    from {{ ref('stg_exactonline__gl_classifications') }} as child
    inner join paths
        on child.division = paths.division
        and child.parent_gl_classification_id = paths.gl_classification_id
    where paths.depth < 20  -- a cycle in the tree must not run forever
)

select
    paths.division,
    paths.gl_classification_id,
    classes.gl_classification_code,
    classes.gl_classification_description,
    classes.balance_side as gl_classification_balance_side,
    paths.depth,
    roots.gl_classification_code as root_classification_code,
    roots.gl_classification_description as root_classification_description,
    level_1.gl_classification_code as level_1_classification_code,
    level_1.gl_classification_description as level_1_classification_description,
    level_1.balance_side as level_1_balance_side
from paths
inner join {{ ref('stg_exactonline__gl_classifications') }} as classes
    on classes.division = paths.division and classes.gl_classification_id = paths.gl_classification_id
inner join {{ ref('stg_exactonline__gl_classifications') }} as roots
    on roots.division = paths.division and roots.gl_classification_id = paths.root_id
left join {{ ref('stg_exactonline__gl_classifications') }} as level_1
    on level_1.division = paths.division and level_1.gl_classification_id = paths.level_1_id
