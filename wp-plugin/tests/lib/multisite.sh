# Uninstall on a multisite network (source after env.sh, with MariaDB up): a second WordPress copy in
# $KCB_ENV_DIR/wp-multisite, its own database, made a network of two sites; the plugin (from the zip)
# activated on both; WordPress's uninstall_plugin() must leave no table, option or job on either site.
kcb_multisite_uninstall() (
    KCB_WP_DIR="$KCB_ENV_DIR/wp-multisite"
    KCB_DB_NAME="kcb_ms"
    kcb_sql -e "DROP DATABASE IF EXISTS $KCB_DB_NAME; CREATE DATABASE $KCB_DB_NAME CHARACTER SET utf8mb4;
        CREATE USER IF NOT EXISTS 'kcb'@'localhost' IDENTIFIED BY 'kcb';
        GRANT ALL ON $KCB_DB_NAME.* TO 'kcb'@'localhost';" || exit 1
    kcb_wordpress_copy
    kcb_write_wp_config 80
    sed -i "s#^define('DISABLE_WP_CRON', true);#define('DISABLE_WP_CRON', true);\ndefine('WP_ALLOW_MULTISITE', true);#" \
        "$KCB_WP_DIR/wp-config.php"
    kcb_install_plugin_files
    local script="$KCB_PLUGIN_DIR/tests/lib/multisite-uninstall.php"
    step() { # WordPress answers a broken network with a wp_die() page and exit code 0: check the last line
        local out
        out="$(php "$script" "$KCB_WP_DIR" "$1" 2>&1)"
        if ! tail -1 <<<"$out" | grep -q '^multisite: ' || grep -q '^multisite: .*: ' <<<"$out"; then
            sed -e 's/<[^>]*>//g' -e '/^\s*$/d' <<<"$out" | tail -8
            return 1
        fi
        tail -1 <<<"$out"
    }
    step network || exit 1
    # Now a network: the constants WordPress's Network Setup screen asks for.
    sed -i "s#^define('WP_ALLOW_MULTISITE', true);#define('MULTISITE', true);\ndefine('SUBDOMAIN_INSTALL', false);\ndefine('DOMAIN_CURRENT_SITE', 'localhost');\ndefine('PATH_CURRENT_SITE', '/');\ndefine('SITE_ID_CURRENT_SITE', 1);\ndefine('BLOG_ID_CURRENT_SITE', 1);#" \
        "$KCB_WP_DIR/wp-config.php"
    step sites || exit 1
    step uninstall || exit 1
)
