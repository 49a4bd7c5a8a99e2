<?php

/**
 * Action Scheduler stand-in: the public functions WooCommerce's bundled Action Scheduler (3.x) offers,
 * with its behaviour where the bridge depends on it.
 *
 * What matters, as in the real one (action-scheduler/functions.php, ActionScheduler_DBStore):
 * - as_next_scheduled_action() answers true while a matching action is in progress, before it looks at
 *   pending ones; so an action that asks it about its own hook sees itself and schedules nothing.
 * - as_has_scheduled_action() counts pending and in-progress actions.
 * - An action is claimed (pending → in-progress), its hook fired with its args, then marked complete, or
 *   failed when the callback throws; a failed action is not retried by the runner.
 * - Actions run from the "action_scheduler_run_queue" WP-Cron hook (every minute on a real shop); tests
 *   call standin_as_run_queue() with the time they want to pretend it is.
 * Stored in its own table, one row per action, so concurrent PHP-FPM workers never lose one.
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors Action Scheduler's snake_case API on purpose.

if (!class_exists('ActionScheduler_Store')) {
    abstract class ActionScheduler_Store
    {
        public const STATUS_COMPLETE = 'complete';
        public const STATUS_PENDING = 'pending';
        public const STATUS_RUNNING = 'in-progress';
        public const STATUS_FAILED = 'failed';
        public const STATUS_CANCELED = 'canceled';
    }
}

function standin_as_table(): string
{
    global $wpdb;
    static $ready = false;
    $table = $wpdb->prefix . 'standin_as_actions';
    if (!$ready && get_option('standin_as_db') !== '1') {
        $wpdb->query("CREATE TABLE IF NOT EXISTS {$table} (
            action_id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
            hook varchar(191) NOT NULL,
            status varchar(20) NOT NULL,
            scheduled_gmt bigint(20) NULL,
            args varchar(8000) NOT NULL DEFAULT '[]',
            group_slug varchar(191) NOT NULL DEFAULT '',
            PRIMARY KEY (action_id),
            KEY hook_status (hook, status)
        )");
        update_option('standin_as_db', '1', true);
    }
    $ready = true;
    return $table;
}

/** @param array<string, mixed> $query */
function standin_as_where(array $query): string
{
    global $wpdb;
    $where = ['1 = 1'];
    $values = [];
    if (isset($query['hook']) && $query['hook'] !== '') {
        $where[] = 'hook = %s';
        $values[] = (string) $query['hook'];
    }
    if (isset($query['args']) && is_array($query['args'])) {
        $where[] = 'args = %s';
        $values[] = (string) wp_json_encode(array_values($query['args']));
    }
    if (isset($query['group']) && $query['group'] !== '') {
        $where[] = 'group_slug = %s';
        $values[] = (string) $query['group'];
    }
    if (isset($query['status']) && $query['status'] !== '') {
        $statuses = (array) $query['status'];
        $where[] = 'status IN (' . implode(', ', array_fill(0, count($statuses), '%s')) . ')';
        array_push($values, ...array_map('strval', $statuses));
    }
    if (isset($query['date'])) {
        $date = $query['date'] instanceof DateTimeInterface ? $query['date']->getTimestamp() : (int) $query['date'];
        $compare = in_array($query['date_compare'] ?? '<=', ['<', '<=', '>', '>=', '=', '!='], true) ? ($query['date_compare'] ?? '<=') : '<=';
        $where[] = "scheduled_gmt IS NOT NULL AND scheduled_gmt {$compare} %d";
        $values[] = $date;
    }
    $sql = implode(' AND ', $where);
    return $values === [] ? $sql : $wpdb->prepare($sql, $values);
}

function standin_as_insert(?int $timestamp, string $hook, array $args, string $group, bool $unique): int
{
    global $wpdb;
    if ($unique && as_has_scheduled_action($hook, $args, $group)) {
        return 0;
    }
    $wpdb->insert(standin_as_table(), [
        'hook' => $hook,
        'status' => ActionScheduler_Store::STATUS_PENDING,
        'scheduled_gmt' => $timestamp,
        'args' => (string) wp_json_encode(array_values($args)),
        'group_slug' => $group,
    ]);
    return (int) $wpdb->insert_id;
}

function as_enqueue_async_action($hook, $args = [], $group = '', $unique = false, $priority = 10): int
{
    return standin_as_insert(null, (string) $hook, (array) $args, (string) $group, (bool) $unique);
}

function as_schedule_single_action($timestamp, $hook, $args = [], $group = '', $unique = false, $priority = 10): int
{
    return standin_as_insert((int) $timestamp, (string) $hook, (array) $args, (string) $group, (bool) $unique);
}

/** Timestamp of the next pending action; true for an in-progress (or async pending) one; false when none. */
function as_next_scheduled_action($hook, $args = null, $group = '')
{
    global $wpdb;
    $table = standin_as_table();
    $query = ['hook' => $hook, 'group' => $group];
    if (is_array($args)) {
        $query['args'] = $args;
    }
    $where = standin_as_where($query + ['status' => ActionScheduler_Store::STATUS_RUNNING]);
    if ($wpdb->get_var("SELECT action_id FROM {$table} WHERE {$where} LIMIT 1")) {
        return true;
    }
    $where = standin_as_where($query + ['status' => ActionScheduler_Store::STATUS_PENDING]);
    $row = $wpdb->get_row("SELECT action_id, scheduled_gmt FROM {$table} WHERE {$where} ORDER BY scheduled_gmt IS NULL DESC, scheduled_gmt ASC, action_id ASC LIMIT 1", ARRAY_A);
    if (!$row) {
        return false;
    }
    return $row['scheduled_gmt'] === null ? true : (int) $row['scheduled_gmt'];
}

function as_has_scheduled_action($hook, $args = null, $group = ''): bool
{
    global $wpdb;
    $table = standin_as_table();
    $query = ['hook' => $hook, 'group' => $group, 'status' => [ActionScheduler_Store::STATUS_PENDING, ActionScheduler_Store::STATUS_RUNNING]];
    if (is_array($args)) {
        $query['args'] = $args;
    }
    $where = standin_as_where($query);
    return (bool) $wpdb->get_var("SELECT action_id FROM {$table} WHERE {$where} LIMIT 1");
}

/**
 * The 'ids' and OBJECT formats; OBJECT rows carry get_hook(), get_args(), get_group() and
 * get_schedule()->get_date() (null for an async action) like ActionScheduler_Action.
 *
 * @param array<string, mixed> $args
 */
function as_get_scheduled_actions($args = [], $return_format = OBJECT): array
{
    global $wpdb;
    $table = standin_as_table();
    $args = (array) $args + ['per_page' => 5, 'offset' => 0, 'order' => 'ASC'];
    $where = standin_as_where($args);
    $order = strtoupper((string) $args['order']) === 'DESC' ? 'DESC' : 'ASC';
    $limit = (int) $args['per_page'] < 0 ? '' : $wpdb->prepare(' LIMIT %d OFFSET %d', (int) $args['per_page'], (int) $args['offset']);
    $rows = (array) $wpdb->get_results("SELECT * FROM {$table} WHERE {$where} ORDER BY scheduled_gmt {$order}, action_id {$order}{$limit}", ARRAY_A);
    if ($return_format === 'ids') {
        return array_map(static fn($row) => (int) $row['action_id'], $rows);
    }
    $actions = [];
    foreach ($rows as $row) {
        $actions[(int) $row['action_id']] = new StandinAsAction($row);
    }
    return $actions;
}

function as_unschedule_action($hook, $args = [], $group = '')
{
    global $wpdb;
    $table = standin_as_table();
    $where = standin_as_where(['hook' => $hook, 'args' => (array) $args, 'group' => $group, 'status' => ActionScheduler_Store::STATUS_PENDING]);
    $id = $wpdb->get_var("SELECT action_id FROM {$table} WHERE {$where} ORDER BY scheduled_gmt ASC, action_id ASC LIMIT 1");
    if (!$id) {
        return null;
    }
    $wpdb->update($table, ['status' => ActionScheduler_Store::STATUS_CANCELED], ['action_id' => (int) $id]);
    return (int) $id;
}

function as_unschedule_all_actions($hook, $args = [], $group = ''): void
{
    global $wpdb;
    $table = standin_as_table();
    $query = ['hook' => $hook, 'group' => $group, 'status' => ActionScheduler_Store::STATUS_PENDING];
    if (is_array($args) && $args !== []) {
        $query['args'] = $args;
    }
    $where = standin_as_where($query);
    $wpdb->query("UPDATE {$table} SET status = 'canceled' WHERE {$where}");
}

/** Enough of ActionScheduler_Action for callers that read a scheduled action's hook, args and date. */
final class StandinAsAction
{
    /** @param array<string, mixed> $row */
    public function __construct(private array $row)
    {
    }

    public function get_hook(): string { return (string) $this->row['hook']; }
    public function get_group(): string { return (string) $this->row['group_slug']; }
    public function get_args(): array { return (array) json_decode((string) $this->row['args'], true); }
    public function get_schedule(): object
    {
        $ts = $this->row['scheduled_gmt'];
        return new class ($ts === null ? null : (int) $ts) {
            public function __construct(private ?int $ts)
            {
            }

            public function get_date(): ?DateTime
            {
                return $this->ts === null ? null : new DateTime('@' . $this->ts);
            }
        };
    }
}

/**
 * Run the actions due at $now (default: the real clock), oldest first, each claimed before it runs, as
 * ActionScheduler_QueueRunner does. Actions an action schedules for $now or earlier wait for the next
 * run, as with the real runner's batch claim. Returns how many ran.
 */
function standin_as_run_queue(?int $now = null): int
{
    global $wpdb;
    $table = standin_as_table();
    $now = $now ?? time();
    $ids = $wpdb->get_col($wpdb->prepare(
        "SELECT action_id FROM {$table} WHERE status = 'pending' AND (scheduled_gmt IS NULL OR scheduled_gmt <= %d) ORDER BY scheduled_gmt IS NULL DESC, scheduled_gmt ASC, action_id ASC LIMIT 25",
        $now
    ));
    $ran = 0;
    foreach ($ids as $id) {
        $claimed = $wpdb->query($wpdb->prepare("UPDATE {$table} SET status = 'in-progress' WHERE action_id = %d AND status = 'pending'", (int) $id));
        if ($claimed !== 1) {
            continue;
        }
        $row = $wpdb->get_row($wpdb->prepare("SELECT * FROM {$table} WHERE action_id = %d", (int) $id), ARRAY_A);
        $status = ActionScheduler_Store::STATUS_COMPLETE;
        try {
            do_action_ref_array((string) $row['hook'], (array) json_decode((string) $row['args'], true));
        } catch (Throwable $error) {
            $status = ActionScheduler_Store::STATUS_FAILED;
        }
        $wpdb->update($table, ['status' => $status], ['action_id' => (int) $id]);
        $ran++;
    }
    return $ran;
}

add_action('action_scheduler_run_queue', static function (): void {
    standin_as_run_queue();
});
