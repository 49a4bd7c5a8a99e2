# shellcheck shell=bash
# Test environment for the plugin: MariaDB (own datadir, socket only), a private copy of Debian's
# `wordpress` package, PHP-FPM (so fastcgi_finish_request is real) behind nginx on a free 127.0.0.1 port.
# Source this file, then call kcb_env_up / kcb_env_down. Everything lives under $KCB_ENV_DIR.
#
# Idempotent: a MariaDB already running on our socket is reused (and then left running); the database,
# WordPress install, PHP-FPM and nginx are recreated on every kcb_env_up.

KCB_ENV_DIR="${KCB_ENV_DIR:-/tmp/kcb-wp-env}"
KCB_PLUGIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KCB_DB_SOCKET="$KCB_ENV_DIR/mysql/mysqld.sock"
KCB_WP_DIR="$KCB_ENV_DIR/wordpress"
KCB_DB_NAME="kcb_wp"
KCB_ADMIN_USER="admin"
KCB_ADMIN_PASS="kcb-admin-password"

kcb_log() { printf '[env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

kcb_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

kcb_wait_for() { # kcb_wait_for SECONDS CMD...: poll a condition with a deadline
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then return 1; fi
        sleep 0.2
    done
}

kcb_mariadb_up() {
    mkdir -p "$KCB_ENV_DIR/mysql"
    if mariadb-admin --no-defaults --socket="$KCB_DB_SOCKET" -uroot ping >/dev/null 2>&1; then
        kcb_log "MariaDB already running on $KCB_DB_SOCKET"
        return 0
    fi
    if [ ! -d "$KCB_ENV_DIR/mysql/data/mysql" ]; then
        kcb_log "initialising MariaDB datadir"
        rm -rf "$KCB_ENV_DIR/mysql/data"
        mariadb-install-db --no-defaults --datadir="$KCB_ENV_DIR/mysql/data" --user=root \
            --auth-root-authentication-method=normal --skip-test-db >"$KCB_ENV_DIR/mysql/install.log" 2>&1 \
            || { cat "$KCB_ENV_DIR/mysql/install.log" >&2; return 1; }
    fi
    kcb_log "starting mariadbd"
    setsid mariadbd --no-defaults --datadir="$KCB_ENV_DIR/mysql/data" --socket="$KCB_DB_SOCKET" \
        --pid-file="$KCB_ENV_DIR/mysql/mysqld.pid" --skip-networking --user=root \
        --log-error="$KCB_ENV_DIR/mysql/error.log" --innodb-buffer-pool-size=128M --skip-log-bin \
        --max-connections=200 </dev/null >/dev/null 2>&1 &
    touch "$KCB_ENV_DIR/mysql/started-by-us"
    kcb_wait_for 60 mariadb-admin --no-defaults --socket="$KCB_DB_SOCKET" -uroot ping \
        || { tail -20 "$KCB_ENV_DIR/mysql/error.log" >&2; return 1; }
}

kcb_mariadb_down() {
    if [ -f "$KCB_ENV_DIR/mysql/started-by-us" ]; then
        mariadb-admin --no-defaults --socket="$KCB_DB_SOCKET" -uroot shutdown >/dev/null 2>&1 || true
        rm -f "$KCB_ENV_DIR/mysql/started-by-us"
    fi
}

kcb_sql() { mariadb --no-defaults --socket="$KCB_DB_SOCKET" -uroot "$@"; }

kcb_wordpress_copy() {
    local version stamp="$KCB_WP_DIR/.kcb-wordpress-version"
    version="$(dpkg-query -W -f='${Version}' wordpress)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$version" ]; then
        kcb_log "copying Debian's wordpress $version"
        rm -rf "$KCB_WP_DIR"
        cp -a /usr/share/wordpress "$KCB_WP_DIR"
        rm -f "$KCB_WP_DIR/.htaccess"
        # Debian links bundled JS/PHP libraries (underscore, getid3...) with relative symlinks into
        # /usr/share; re-point them absolutely so the copy finds them.
        local link original
        while IFS= read -r link; do
            original="$(readlink -f "/usr/share/wordpress/${link#"$KCB_WP_DIR"/}")"
            if [ -e "$original" ]; then ln -sfn "$original" "$link"; else rm -f "$link"; fi
        done < <(find "$KCB_WP_DIR" -type l)
        echo "$version" >"$stamp"
    fi
    mkdir -p "$KCB_WP_DIR/wp-content/mu-plugins" "$KCB_WP_DIR/wp-content/plugins" "$KCB_WP_DIR/wp-content/uploads"
}

kcb_write_wp_config() {
    local port="$1" keys
    keys="$(python3 -c 'import secrets
for k in ["AUTH_KEY","SECURE_AUTH_KEY","LOGGED_IN_KEY","NONCE_KEY","AUTH_SALT","SECURE_AUTH_SALT","LOGGED_IN_SALT","NONCE_SALT"]:
    print("define(%r, %r);" % (k, secrets.token_hex(32)))')"
    cat >"$KCB_WP_DIR/wp-config.php" <<PHP
<?php
// Written by wp-plugin/tests/lib/env.sh for the plugin tests (replaces Debian's /etc/wordpress lookup).
define('DB_NAME', '$KCB_DB_NAME');
define('DB_USER', 'kcb');
define('DB_PASSWORD', 'kcb');
define('DB_HOST', 'localhost:$KCB_DB_SOCKET');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
\$table_prefix = 'wp_';
$keys
define('WP_DEBUG', true);
define('WP_DEBUG_LOG', '$KCB_ENV_DIR/wp-debug.log');
define('WP_DEBUG_DISPLAY', false);
// Tests run the retry job themselves; a cron loopback in the middle of a test would race with it.
define('DISABLE_WP_CRON', true);
// No internet here: keep WordPress from calling home (localhost and this site stay reachable).
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_AUTO_UPDATE_CORE', false);
define('FS_METHOD', 'direct');
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
if (!isset(\$_SERVER['HTTP_HOST'])) {
    \$_SERVER['HTTP_HOST'] = '127.0.0.1:$port';
}
if (!defined('ABSPATH')) {
    define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
PHP
}

kcb_install_plugin_files() {
    # The plugin goes in from the distributable zip, as a shop owner would upload it.
    make -s -C "$KCB_PLUGIN_DIR" dist >/dev/null
    rm -rf "$KCB_WP_DIR/wp-content/plugins/keycrm-bridge"
    (cd "$KCB_WP_DIR/wp-content/plugins" && unzip -q "$KCB_PLUGIN_DIR/dist/keycrm-bridge.zip")
    rm -rf "$KCB_WP_DIR/wp-content/mu-plugins/kcb-standin"
    cp -r "$KCB_PLUGIN_DIR/tests/standin" "$KCB_WP_DIR/wp-content/mu-plugins/kcb-standin"
    printf '<?php\n// WooCommerce stand-in for the KeyCRM Bridge tests.\nrequire_once __DIR__ . "/kcb-standin/woocommerce-standin.php";\n' \
        >"$KCB_WP_DIR/wp-content/mu-plugins/kcb-standin.php"
}

kcb_fpm_up() {
    mkdir -p "$KCB_ENV_DIR/fpm"
    kcb_stop_pidfile "$KCB_ENV_DIR/fpm/fpm.pid"
    cat >"$KCB_ENV_DIR/fpm/php-fpm.conf" <<CONF
[global]
pid = $KCB_ENV_DIR/fpm/fpm.pid
error_log = $KCB_ENV_DIR/fpm/error.log
daemonize = yes

[kcb]
user = root
group = root
listen = $KCB_ENV_DIR/fpm/fpm.sock
pm = static
pm.max_children = ${KCB_FPM_CHILDREN:-6}
; The tests wait on "active processes" here for the flush requests a step started in the background.
pm.status_path = /kcb-fpm-status
request_terminate_timeout = 120
catch_workers_output = yes
clear_env = no
php_admin_value[error_log] = $KCB_ENV_DIR/fpm/php-error.log
php_admin_flag[log_errors] = on
php_admin_value[memory_limit] = 256M
CONF
    php-fpm8.2 -R -y "$KCB_ENV_DIR/fpm/php-fpm.conf" || return 1
    kcb_wait_for 20 test -S "$KCB_ENV_DIR/fpm/fpm.sock"
}

kcb_nginx_up() {
    local port="$1"
    mkdir -p "$KCB_ENV_DIR/nginx/tmp"
    kcb_stop_pidfile "$KCB_ENV_DIR/nginx/nginx.pid"
    cat >"$KCB_ENV_DIR/nginx/nginx.conf" <<CONF
daemon on;
user root;
worker_processes 1;
pid $KCB_ENV_DIR/nginx/nginx.pid;
error_log $KCB_ENV_DIR/nginx/error.log warn;
events { worker_connections 512; }
http {
    include /etc/nginx/mime.types;
    access_log $KCB_ENV_DIR/nginx/access.log;
    client_body_temp_path $KCB_ENV_DIR/nginx/tmp/body;
    fastcgi_temp_path $KCB_ENV_DIR/nginx/tmp/fastcgi;
    proxy_temp_path $KCB_ENV_DIR/nginx/tmp/proxy;
    uwsgi_temp_path $KCB_ENV_DIR/nginx/tmp/uwsgi;
    scgi_temp_path $KCB_ENV_DIR/nginx/tmp/scgi;
    client_max_body_size 16m;
    server {
        listen 127.0.0.1:$port;
        root $KCB_WP_DIR;
        index index.php;
        # POST/PUT to "/" (REST with plain permalinks) must reach PHP, not the static index handler.
        location = / { rewrite ^ /index.php last; }
        location / { try_files \$uri \$uri/ /index.php?\$args; }
        location = /kcb-fpm-status {
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_NAME /kcb-fpm-status;
            fastcgi_param SCRIPT_FILENAME /kcb-fpm-status;
            fastcgi_pass unix:$KCB_ENV_DIR/fpm/fpm.sock;
        }
        location ~ \.php\$ {
            include /etc/nginx/fastcgi_params;
            # Debian's fastcgi_params passes \$host (no port); WordPress needs the port in HTTP_HOST.
            fastcgi_param HTTP_HOST \$host:\$server_port;
            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
            fastcgi_read_timeout 120;
            fastcgi_pass unix:$KCB_ENV_DIR/fpm/fpm.sock;
        }
    }
}
CONF
    nginx -c "$KCB_ENV_DIR/nginx/nginx.conf" -g 'error_log stderr;' 2>"$KCB_ENV_DIR/nginx/start.log" \
        || { cat "$KCB_ENV_DIR/nginx/start.log" >&2; return 1; }
}

kcb_stop_pidfile() { # stop a daemon this environment started earlier, by its pid file
    local file="$1" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file" 2>/dev/null)"
    # Only a process whose command line names this environment: a stale pid may belong to someone else now.
    if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$KCB_ENV_DIR"; then
        kill "$pid" 2>/dev/null || true
        kcb_wait_for 10 bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

kcb_env_up() {
    local port
    mkdir -p "$KCB_ENV_DIR"
    kcb_mariadb_up || return 1
    kcb_sql -e "DROP DATABASE IF EXISTS $KCB_DB_NAME; CREATE DATABASE $KCB_DB_NAME CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'kcb'@'localhost' IDENTIFIED BY 'kcb';
        GRANT ALL ON $KCB_DB_NAME.* TO 'kcb'@'localhost';" || return 1
    kcb_wordpress_copy
    port="$(kcb_free_port)"
    KCB_WP_URL="http://127.0.0.1:$port"
    kcb_write_wp_config "$port"
    kcb_install_plugin_files || return 1
    rm -f "$KCB_ENV_DIR/wp-debug.log"
    kcb_log "installing WordPress at $KCB_WP_URL"
    php "$KCB_PLUGIN_DIR/tests/lib/install-wp.php" "$KCB_WP_DIR" "$KCB_WP_URL" "$KCB_ADMIN_USER" "$KCB_ADMIN_PASS" || return 1
    kcb_fpm_up || return 1
    kcb_nginx_up "$port" || return 1
    kcb_wait_for 20 curl -fsS -o /dev/null "$KCB_WP_URL/wp-login.php" || { kcb_log "WordPress does not answer"; return 1; }
    cat >"$KCB_ENV_DIR/env.json" <<JSON
{"wp_dir": "$KCB_WP_DIR", "wp_url": "$KCB_WP_URL", "admin_user": "$KCB_ADMIN_USER", "admin_pass": "$KCB_ADMIN_PASS",
 "plugin_dir": "$KCB_PLUGIN_DIR", "env_dir": "$KCB_ENV_DIR"}
JSON
    export KCB_WP_URL KCB_ENV_DIR KCB_WP_DIR
    kcb_log "WordPress ready at $KCB_WP_URL"
}

kcb_apache_up() { # Apache + mod_php (prefork) on its own loopback port, serving the same WordPress
    # For bench/plugin_overhead only. Its own config and run dir under $KCB_ENV_DIR/apache, nothing in
    # /etc/apache2 is read or changed. mod_php and PHP-FPM do not conflict here: PHP-FPM runs apart, and
    # mod_php needs the prefork MPM, which this private instance loads. Apache refuses to serve as root,
    # so its children run as www-data: they need to read WordPress and write only where made writable.
    local dir="$KCB_ENV_DIR/apache" port
    mkdir -p "$dir"
    kcb_stop_pidfile "$dir/apache.pid"
    port="$(kcb_free_port)"
    touch "$KCB_ENV_DIR/wp-debug.log" "$dir/php-error.log" && chmod 666 "$KCB_ENV_DIR/wp-debug.log" "$dir/php-error.log"
    chmod o+rx "$KCB_ENV_DIR" "$KCB_ENV_DIR/mysql"
    cat >"$dir/httpd.conf" <<CONF
# Written by wp-plugin/tests/lib/env.sh (kcb_apache_up) for bench/plugin_overhead.
ServerRoot "$dir"
DefaultRuntimeDir "$dir"
PidFile "$dir/apache.pid"
Mutex file:$dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
User www-data
Group www-data
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule php_module /usr/lib/apache2/modules/libphp8.2.so
StartServers 4
MinSpareServers 4
MaxSpareServers 8
MaxRequestWorkers ${KCB_APACHE_WORKERS:-8}
ErrorLog "$dir/error.log"
LogLevel warn
TypesConfig /etc/mime.types
DocumentRoot "$KCB_WP_DIR"
<Directory "$KCB_WP_DIR">
    Require all granted
    AllowOverride None
</Directory>
DirectoryIndex index.php
<FilesMatch "\.php\$">
    SetHandler application/x-httpd-php
</FilesMatch>
php_admin_value error_log "$dir/php-error.log"
php_admin_flag log_errors on
CONF
    apache2 -f "$dir/httpd.conf" -k start || { cat "$dir/error.log" >&2; return 1; }
    KCB_APACHE_URL="http://127.0.0.1:$port"
    kcb_wait_for 20 curl -fsS -o /dev/null "$KCB_APACHE_URL/wp-login.php" \
        || { kcb_log "Apache + mod_php does not answer"; tail -5 "$dir/error.log" >&2; return 1; }
    export KCB_APACHE_URL
    kcb_log "Apache + mod_php (prefork) ready at $KCB_APACHE_URL"
}

kcb_env_down() {
    kcb_stop_pidfile "$KCB_ENV_DIR/apache/apache.pid"
    kcb_stop_pidfile "$KCB_ENV_DIR/nginx/nginx.pid"
    kcb_stop_pidfile "$KCB_ENV_DIR/fpm/fpm.pid"
    if [ -z "${KCB_KEEP_DB:-}" ]; then kcb_mariadb_down; fi
}
