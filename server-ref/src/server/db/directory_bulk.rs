//! The CSV import's statements beyond `directory`'s: every membership of an organization in
//! one read, and a user's memberships set at once.

use super::{DbResult, Tx};

/// Every membership of `organization_id`: (user id, department id).
pub(crate) async fn memberships_in(
    tx: &mut Tx,
    organization_id: &str,
) -> DbResult<Vec<(String, String)>> {
    sqlx::query_as(
        "SELECT user_id, department_id FROM department_members WHERE organization_id = $1",
    )
    .bind(organization_id)
    .fetch_all(&mut **tx)
    .await
}

/// Makes `department_ids` (departments of `organization_id`, checked by the caller) the
/// departments user `user_id` belongs to, exactly.
pub(crate) async fn set_user_departments_in(
    tx: &mut Tx,
    organization_id: &str,
    user_id: &str,
    department_ids: &[String],
) -> DbResult<()> {
    sqlx::query("DELETE FROM department_members WHERE organization_id = $1 AND user_id = $2")
        .bind(organization_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for department_id in department_ids {
        sqlx::query(
            "INSERT INTO department_members (department_id, user_id, organization_id) \
             VALUES ($1, $2, $3) ON CONFLICT (department_id, user_id) DO NOTHING",
        )
        .bind(department_id)
        .bind(user_id)
        .bind(organization_id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
