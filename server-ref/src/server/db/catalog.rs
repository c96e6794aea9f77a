//! Changes to products and policies (`PATCH /v1/products/{id}`, `PATCH /v1/policies/{id}`).

use super::{Db, DbResult, Policy, Product};

impl Db {
    /// Stores a product's name; `false` when the organization has no such product.
    pub async fn update_product(&self, product: &Product) -> DbResult<bool> {
        let done =
            sqlx::query("UPDATE products SET name = $1 WHERE id = $2 AND organization_id = $3")
                .bind(&product.name)
                .bind(&product.id)
                .bind(&product.organization_id)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores a policy's changeable members (the handler decides which those are); `false`
    /// when the organization has no such policy.
    pub async fn update_policy(&self, p: &Policy) -> DbResult<bool> {
        let done = sqlx::query(
            "UPDATE policies SET name = $1, duration = $2, grace_period = $3, max_machines = $4, \
             seats = $5, check_in_interval = $6, check_in_grace = $7, seat_mode = $8, \
             allow_over_allocation = $9, reclaim_after = $10 \
             WHERE id = $11 AND organization_id = $12",
        )
        .bind(&p.name)
        .bind(p.duration)
        .bind(p.grace_period)
        .bind(p.max_machines)
        .bind(p.seats)
        .bind(p.check_in_interval)
        .bind(p.check_in_grace)
        .bind(&p.seat_mode)
        .bind(p.allow_over_allocation)
        .bind(p.reclaim_after)
        .bind(&p.id)
        .bind(&p.organization_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
