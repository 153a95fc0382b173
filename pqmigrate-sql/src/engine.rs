//! Planning a migration's query against one input schema with DataFusion, and evaluating it on
//! that schema's batches. The query's projection says, per output column, whether it is an
//! input column (carried over, perhaps renamed) or computed; only the computed ones are
//! evaluated, on the input columns they read.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::TreeNode;
use datafusion_common::{DFSchema, TableReference};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{AggregateUDF, Expr, HigherOrderUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF};
use datafusion_optimizer::analyzer::AnalyzerRule;
use datafusion_optimizer::analyzer::type_coercion::TypeCoercion;
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};
use datafusion_sql::planner::SqlToRel;
use datafusion_sql::sqlparser::ast::Statement;

use crate::bridge::{self, df};
use crate::functions::FUNCTIONS;
use crate::refuse::INPUT_TABLE;

/// How operators and special forms (`||`, `position`, `overlay`...) become function calls.
static PLANNERS: LazyLock<Vec<Arc<dyn ExprPlanner>>> = LazyLock::new(|| {
    vec![
        Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
        Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
    ]
});

/// One table, `input`, with the file's schema; DataFusion's scalar functions; no aggregate or
/// window function.
struct Provider {
    table: Arc<dyn TableSource>,
    options: ConfigOptions,
}

impl ContextProvider for Provider {
    fn get_table_source(&self, name: TableReference) -> datafusion_common::Result<Arc<dyn TableSource>> {
        if name.table().eq_ignore_ascii_case(INPUT_TABLE) {
            Ok(self.table.clone())
        } else {
            datafusion_common::plan_err!("unknown table {name}: a migration reads `{INPUT_TABLE}`")
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &PLANNERS
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        FUNCTIONS.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<arrow59::datatypes::DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        FUNCTIONS.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Where an output column comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// Input column `i`, carried over (under another name when renamed).
    Input(usize),
    /// Computed column `j`.
    Computed(usize),
}

/// The columns a query reads, writes and renames, from its plan: the same for every input
/// schema, since they are named in the query.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ColumnUse {
    /// Input columns the computed columns read.
    pub(crate) reads: Vec<String>,
    /// Output columns computed.
    pub(crate) writes: Vec<String>,
    /// Input columns carried over under a new name.
    pub(crate) renames: Vec<(String, String)>,
    /// Computed columns of a floating-point type.
    pub(crate) float_writes: Vec<String>,
}

/// A query planned against one input schema.
pub(crate) struct Planned {
    /// The output schema.
    pub(crate) output: SchemaRef,
    /// What the query does with columns.
    pub(crate) column_use: ColumnUse,
    sources: Vec<Source>,
    /// The input columns the computed columns read, by index.
    evaluated_on: Vec<usize>,
    /// The computed columns' expressions, over those input columns.
    computed: Vec<Arc<dyn PhysicalExpr>>,
    /// The computed columns' schema, on DataFusion's side.
    computed_schema: df::SchemaRef,
}

/// Plans `statement` (refusals already checked, any `RENAME` taken out as `renames`) against
/// `input`.
///
/// # Errors
/// DataFusion's planning error (an unknown column or function, a type error), a volatile
/// function, or an output that is not a projection of `input`'s rows.
pub(crate) fn plan(statement: &Statement, renames: &[(String, String)], input: &Schema) -> Result<Planned, String> {
    let df_input = bridge::schema_to_df(input)?;
    let provider = Provider {
        table: Arc::new(LogicalTableSource::new(df_input.clone())),
        options: ConfigOptions::default(),
    };
    let plan = SqlToRel::new(&provider)
        .sql_statement_to_plan(statement.clone())
        .map_err(|e| e.strip_backtrace())?;
    let plan = TypeCoercion::new()
        .analyze(plan, &provider.options)
        .map_err(|e| e.strip_backtrace())?;
    let LogicalPlan::Projection(projection) = &plan else {
        return Err(format!(
            "plans as {} rather than a projection of the file's rows",
            plan.display()
        ));
    };
    let mut scan = projection.input.as_ref();
    while let LogicalPlan::SubqueryAlias(alias) = scan {
        scan = alias.input.as_ref();
    }
    if !matches!(scan, LogicalPlan::TableScan(_)) {
        return Err(format!("reads {} rather than the file's rows", scan.display()));
    }
    let simplifier = ExprSimplifier::new(
        SimplifyContext::builder()
            .with_schema(projection.input.schema().clone())
            .build(),
    );
    let renamed: HashMap<&str, &str> = renames.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let mut column_use = ColumnUse::default();
    let mut sources = Vec::with_capacity(projection.expr.len());
    let mut fields = Vec::with_capacity(projection.expr.len());
    let mut computed_exprs = Vec::new();
    let mut computed_fields = Vec::new();
    let mut reads = std::collections::BTreeSet::new();
    for (i, expr) in projection.expr.iter().enumerate() {
        if let Some(function) = volatile_function(expr) {
            return Err(format!(
                "calls {function}, whose result changes from call to call; a migration must write the same output whenever it runs"
            ));
        }
        let name = projection.schema.field(i).name().clone();
        let unaliased = match expr {
            Expr::Alias(alias) => alias.expr.as_ref(),
            other => other,
        };
        match unaliased {
            Expr::Column(column) => {
                let index = input
                    .index_of(&column.name)
                    .map_err(|_| format!("column {} is not in the file", column.name))?;
                let name = renamed.get(column.name.as_str()).map_or(name, |n| n.to_string());
                if name != column.name {
                    column_use.renames.push((column.name.clone(), name.clone()));
                }
                fields.push(Arc::new(input.field(index).clone().with_name(name)));
                sources.push(Source::Input(index));
            }
            computed => {
                // Function calls that DataFusion rewrites before evaluating (`arrow_cast` to a
                // cast, constants folded) are rewritten here too.
                let computed = simplifier.simplify(computed.clone()).map_err(|e| e.strip_backtrace())?;
                reads.extend(computed.column_refs().into_iter().map(|c| c.name.clone()));
                let field = projection.schema.field(i);
                computed_fields.push(field.as_ref().clone());
                column_use.writes.push(name);
                sources.push(Source::Computed(computed_exprs.len()));
                computed_exprs.push(computed);
                fields.push(Arc::new(Field::new("pending", arrow_schema::DataType::Null, true)));
            }
        }
    }
    let evaluated_on: Vec<usize> = reads
        .iter()
        .map(|name| {
            input
                .index_of(name)
                .map_err(|_| format!("column {name} is not in the file"))
        })
        .collect::<Result<_, _>>()?;
    column_use.reads = reads.into_iter().collect();
    let evaluated_schema = Arc::new(df_input.project(&evaluated_on).map_err(|e| e.to_string())?);
    let df_schema =
        DFSchema::try_from_qualified_schema(INPUT_TABLE, &evaluated_schema).map_err(|e| e.strip_backtrace())?;
    let props = ExecutionProps::new();
    let computed = computed_exprs
        .iter()
        .map(|expr| {
            create_physical_expr(expr, &df_schema, &props, &PhysicalPlanningContext::default())
                .map_err(|e| e.strip_backtrace())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let computed_schema = Arc::new(df::Schema::new(computed_fields));
    let ours = bridge::schema_from_df(&computed_schema)?;
    for (slot, source) in fields.iter_mut().zip(&sources) {
        if let Source::Computed(j) = source {
            let field = ours.field(*j).clone();
            if matches!(
                field.data_type(),
                arrow_schema::DataType::Float32 | arrow_schema::DataType::Float64
            ) {
                column_use.float_writes.push(field.name().clone());
            }
            *slot = Arc::new(field);
        }
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = fields.iter().find(|f| !seen.insert(f.name().clone())) {
        return Err(format!("writes column {} twice", twice.name()));
    }
    Ok(Planned {
        output: Arc::new(Schema::new_with_metadata(fields, input.metadata().clone())),
        column_use,
        sources,
        evaluated_on,
        computed,
        computed_schema,
    })
}

/// The name of a function the expression calls whose result is not fixed by its arguments
/// (volatile like `random()`, or stable within one query only like `now()`), if any.
fn volatile_function(expr: &Expr) -> Option<String> {
    let mut found = None;
    let _ = expr.apply(|node| {
        if let Expr::ScalarFunction(function) = node
            && function.func.signature().volatility != datafusion_expr::Volatility::Immutable
        {
            found = Some(format!("{}()", function.name()));
            return Ok(datafusion_common::tree_node::TreeNodeRecursion::Stop);
        }
        Ok(datafusion_common::tree_node::TreeNodeRecursion::Continue)
    });
    found
}

impl Planned {
    /// The query's output for `batch`, whose schema is the one this plan was made for.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let computed = if self.computed.is_empty() {
            None
        } else {
            let rows = batch.num_rows();
            let inputs = if self.evaluated_on.is_empty() {
                let options = arrow59::array::RecordBatchOptions::new().with_row_count(Some(rows));
                df::RecordBatch::try_new_with_options(Arc::new(df::Schema::empty()), Vec::new(), &options)
                    .map_err(|e| e.to_string())?
            } else {
                bridge::batch_to_df(&batch.project(&self.evaluated_on).map_err(|e| e.to_string())?)?
            };
            let columns = self
                .computed
                .iter()
                .map(|expr| {
                    expr.evaluate(&inputs)
                        .and_then(|value| value.into_array(rows))
                        .map_err(|e| e.strip_backtrace())
                })
                .collect::<Result<Vec<df::ArrayRef>, _>>()?;
            let computed =
                df::RecordBatch::try_new(self.computed_schema.clone(), columns).map_err(|e| e.to_string())?;
            Some(bridge::batch_from_df(&computed)?)
        };
        let columns = self
            .sources
            .iter()
            .map(|source| match source {
                Source::Input(i) => batch.column(*i).clone(),
                Source::Computed(j) => computed.as_ref().map(|c| c.column(*j).clone()).expect("computed"),
            })
            .collect();
        RecordBatch::try_new(self.output.clone(), columns).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, ArrayRef, Float64Array, Int8Array, StringArray};
    use arrow_schema::DataType;

    fn statement(text: &str) -> Statement {
        crate::refuse::parse("f", text).unwrap()
    }

    /// Parsed without the checks of loading, to show the plan's own.
    fn unchecked(text: &str) -> Statement {
        use datafusion_sql::sqlparser::{dialect::GenericDialect, parser::Parser};
        Parser::parse_sql(&GenericDialect {}, text).unwrap().remove(0)
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(3.0), Some(-1.0), None])) as ArrayRef,
            ),
            (
                "y",
                Arc::new(Float64Array::from(vec![Some(4.0), Some(-1.0), Some(2.0)])) as ArrayRef,
            ),
            ("name", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn the_plan_says_what_is_read_computed_and_carried_over() {
        let input = batch();
        let planned = plan(
            &statement(
                "SELECT * EXCLUDE (name), sqrt(x * x + y * y) AS m, CAST(CASE WHEN x >= 0 THEN 1 ELSE 2 END AS TINYINT) AS q FROM input",
            ),
            &[],
            &input.schema(),
        )
        .unwrap();
        assert_eq!(planned.column_use.reads, ["x", "y"]);
        assert_eq!(planned.column_use.writes, ["m", "q"]);
        assert_eq!(planned.column_use.float_writes, ["m"]);
        let names: Vec<_> = planned.output.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["x", "y", "m", "q"]);
        let out = planned.evaluate(&input).unwrap();
        let m = out.column(2).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((m.value(0), m.is_null(2)), (5.0, true));
        let q = out.column(3).as_any().downcast_ref::<Int8Array>().unwrap();
        assert_eq!(q.values().to_vec(), [1, 2, 2]);
        assert!(
            Arc::ptr_eq(out.column(0), input.column(0)),
            "carried-over columns are not copied"
        );
    }

    #[test]
    fn renames_and_replacements_keep_the_column_order() {
        let input = batch();
        let planned = plan(
            &statement("SELECT * REPLACE (arrow_cast(name, 'Dictionary(Int32, Utf8)') AS name) FROM input"),
            &[("x".to_string(), "x_m".to_string())],
            &input.schema(),
        )
        .unwrap();
        let fields: Vec<_> = planned
            .output
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            fields,
            [
                ("x_m".to_string(), DataType::Float64),
                ("y".to_string(), DataType::Float64),
                (
                    "name".to_string(),
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
                ),
            ]
        );
        assert_eq!(planned.column_use.renames, [("x".to_string(), "x_m".to_string())]);
        assert_eq!(
            (planned.column_use.reads.clone(), planned.column_use.writes.clone()),
            (vec!["name".to_string()], vec!["name".to_string()])
        );
        assert_eq!(planned.evaluate(&input).unwrap().num_rows(), 3);
    }

    #[test]
    fn unknown_columns_type_errors_and_volatile_functions_are_refused() {
        let input = batch();
        let err = |text: &str| {
            plan(&unchecked(text), &[], &input.schema())
                .err()
                .unwrap_or_else(|| panic!("{text} was taken"))
        };
        assert!(err("SELECT *, z + 1 AS w FROM input").contains("z"), "unknown column");
        assert!(err("SELECT *, random() AS r FROM input").contains("calls random()"));
        assert!(err("SELECT *, now() AS t FROM input").contains("calls now()"));
        let twice = err("SELECT *, x AS y FROM input");
        assert!(twice.contains("twice") || twice.contains("y"), "{twice}");
    }
}
