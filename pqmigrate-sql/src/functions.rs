//! DataFusion's scalar functions, as the planner and the load-time checks see them.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion_expr::ScalarUDF;

/// DataFusion's scalar functions, by name and alias.
pub(crate) static FUNCTIONS: LazyLock<HashMap<String, Arc<ScalarUDF>>> = LazyLock::new(|| {
    let mut functions = HashMap::new();
    for function in datafusion_functions::all_default_functions() {
        for alias in function.aliases() {
            functions.insert(alias.clone(), function.clone());
        }
        functions.insert(function.name().to_string(), function);
    }
    functions
});

/// Whether the scalar function `name` is fixed by its arguments (not `random()`, not `now()`);
/// `None` for a name DataFusion does not know.
pub(crate) fn is_immutable(name: &str) -> Option<bool> {
    FUNCTIONS
        .get(&name.to_ascii_lowercase())
        .map(|f| f.signature().volatility == datafusion_expr::Volatility::Immutable)
}
